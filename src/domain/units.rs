//! Integer units of the exchange. A price is a count of ticks, a size a count of lots, an
//! amount a count of a token's base units (wei-like). Keeping them as distinct types makes
//! "price times price" or "lots where base units were meant" a compile error, and integer
//! counts make every fill exact: no rounding anywhere but the documented fee floor.

use std::fmt;
use std::ops::{Add, AddAssign, Sub, SubAssign};

/// A limit price as a whole number of quote ticks per lot. Zero is never a valid price.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PriceTicks(pub u64);

/// A quantity as a whole number of base lots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct QtyLots(pub u64);

/// An amount of one asset in its smallest indivisible unit (`u128` as on-chain `uint256`
/// balances never exceed it in practice, and `u128` products of ticks and lots cannot overflow).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount(pub u128);

/// A fee rate in basis points (1/10,000). Capped at 10,000 by [`crate::domain::MarketSpec`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Bps(pub u16);

/// A point in time in milliseconds since the Unix epoch, always supplied by the caller: the
/// domain never reads a clock, so the same inputs always give the same events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TimestampMs(pub u64);

impl QtyLots {
    pub const ZERO: QtyLots = QtyLots(0);

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    pub fn min(self, other: QtyLots) -> QtyLots {
        QtyLots(self.0.min(other.0))
    }
}

impl Add for QtyLots {
    type Output = QtyLots;
    fn add(self, rhs: QtyLots) -> QtyLots {
        QtyLots(self.0 + rhs.0)
    }
}

impl AddAssign for QtyLots {
    fn add_assign(&mut self, rhs: QtyLots) {
        self.0 += rhs.0;
    }
}

impl Sub for QtyLots {
    type Output = QtyLots;
    fn sub(self, rhs: QtyLots) -> QtyLots {
        QtyLots(self.0 - rhs.0)
    }
}

impl SubAssign for QtyLots {
    fn sub_assign(&mut self, rhs: QtyLots) {
        self.0 -= rhs.0;
    }
}

impl Amount {
    pub const ZERO: Amount = Amount(0);

    pub fn checked_add(self, rhs: Amount) -> Option<Amount> {
        self.0.checked_add(rhs.0).map(Amount)
    }

    pub fn checked_sub(self, rhs: Amount) -> Option<Amount> {
        self.0.checked_sub(rhs.0).map(Amount)
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl Bps {
    pub const ZERO: Bps = Bps(0);
    pub const DENOMINATOR: u128 = 10_000;

    /// The fee on `notional`, rounded down: the trader never pays a fraction of a base unit
    /// more than the rate says, and the fee account receives exactly what was charged.
    pub fn fee_on(self, notional: Amount) -> Amount {
        // Split so no intermediate exceeds the notional: floor(n * r / D) equals
        // (n / D) * r + (n % D) * r / D, and r <= D (MarketSpec::validate) bounds both terms.
        Amount(
            notional.0 / Self::DENOMINATOR * self.0 as u128
                + notional.0 % Self::DENOMINATOR * self.0 as u128 / Self::DENOMINATOR,
        )
    }
}

macro_rules! display_inner {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    )*};
}
display_inner!(PriceTicks, QtyLots, Amount, Bps, TimestampMs);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fee_rounds_down_and_never_overflows() {
        assert_eq!(Bps(10).fee_on(Amount(999)), Amount(0));
        assert_eq!(Bps(10).fee_on(Amount(1_000)), Amount(1));
        assert_eq!(Bps(25).fee_on(Amount(1_234_567)), Amount(3_086));
        assert_eq!(Bps(10_000).fee_on(Amount(u128::MAX)), Amount(u128::MAX));
        assert_eq!(Bps(1).fee_on(Amount(u128::MAX)), Amount(u128::MAX / 10_000));
    }
}
