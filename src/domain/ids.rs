//! Identifiers. Each is its own type so an order id can never be passed where a trade id or
//! a user is expected.

use std::fmt;

/// An order's exchange-wide id, unique for the life of a market.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OrderId(pub u64);

/// A trade's id, gapless per market: the n-th trade a market ever produced has id n.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TradeId(pub u64);

/// A user: the 20-byte address of the wallet that owns the account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserId(pub [u8; 20]);

/// An asset (token) by its short symbol, e.g. `BTC` or `USDT`; at most 16 ASCII bytes so it
/// is `Copy` and needs no allocation.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AssetId {
    len: u8,
    bytes: [u8; 16],
}

/// A market's id, e.g. `BTC-USDT`; at most 32 ASCII bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MarketId {
    len: u8,
    bytes: [u8; 32],
}

/// An identifier chosen by the client, echoed back so it can find its own orders; at most
/// 36 bytes (a UUID in text form fits).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ClientOrderId(String);

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} must be 1 to {max} characters of [A-Za-z0-9._-], got {got:?}")]
    Invalid { kind: &'static str, max: usize, got: String },
}

fn symbol_bytes<const N: usize>(kind: &'static str, s: &str) -> Result<(u8, [u8; N]), IdError> {
    let ok = !s.is_empty() && s.len() <= N && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !ok {
        return Err(IdError::Invalid { kind, max: N, got: s.chars().take(64).collect() });
    }
    let mut bytes = [0u8; N];
    bytes[..s.len()].copy_from_slice(s.as_bytes());
    Ok((s.len() as u8, bytes))
}

impl AssetId {
    pub fn new(symbol: &str) -> Result<AssetId, IdError> {
        let (len, bytes) = symbol_bytes::<16>("asset", symbol)?;
        Ok(AssetId { len, bytes })
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII bytes are ever stored (checked in `new`), so this cannot fail.
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("?")
    }
}

impl MarketId {
    pub fn new(symbol: &str) -> Result<MarketId, IdError> {
        let (len, bytes) = symbol_bytes::<32>("market", symbol)?;
        Ok(MarketId { len, bytes })
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII bytes are ever stored (checked in `new`), so this cannot fail.
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("?")
    }
}

impl ClientOrderId {
    pub const MAX_LEN: usize = 36;

    pub fn new(id: &str) -> Result<ClientOrderId, IdError> {
        symbol_bytes::<{ ClientOrderId::MAX_LEN }>("client order id", id)?;
        Ok(ClientOrderId(id.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl UserId {
    /// Parses `0x` followed by 40 hex digits (any case).
    pub fn from_hex(s: &str) -> Result<UserId, IdError> {
        let bad = || IdError::Invalid { kind: "user address", max: 42, got: s.chars().take(64).collect() };
        let hex = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).ok_or_else(bad)?;
        if hex.len() != 40 {
            return Err(bad());
        }
        // Bytes, not `str` slices: a multi-byte character would make a slice panic.
        let mut out = [0u8; 20];
        for (byte, pair) in out.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
            let (Some(hi), Some(lo)) = (nibble(pair[0]), nibble(pair[1])) else { return Err(bad()) };
            *byte = hi << 4 | lo;
        }
        Ok(UserId(out))
    }
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut text = [0u8; 42];
        text[..2].copy_from_slice(b"0x");
        for (pair, b) in text[2..].chunks_exact_mut(2).zip(self.0) {
            pair[0] = DIGITS[usize::from(b >> 4)];
            pair[1] = DIGITS[usize::from(b & 0xf)];
        }
        // Every byte written is an ASCII digit or letter.
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

macro_rules! display_symbol {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", self.as_str())
            }
        }
    )*};
}
display_symbol!(AssetId, MarketId);

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Display for TradeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
#[path = "../../unit_tests/domain/ids.rs"]
mod tests;
