//! A market's specification: what it trades and its numeric grid. The grid is chosen so that
//! every fill's base and quote amounts are exact integers of the assets' base units:
//! `base = qty_lots * base_lot` and `quote = price_ticks * qty_lots * quote_tick`.

use super::ids::{AssetId, MarketId};
use super::units::{Amount, Bps, PriceTicks, QtyLots};

/// Whether a market accepts orders. A halted market rejects new orders and amends but still
/// lets users cancel, so their funds are never trapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarketStatus {
    Open,
    Halted,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarketSpec {
    pub id: MarketId,
    pub base: AssetId,
    pub quote: AssetId,
    /// Base units per lot.
    pub base_lot: Amount,
    /// Quote units per tick per lot.
    pub quote_tick: Amount,
    pub min_qty: QtyLots,
    pub max_qty: QtyLots,
    /// Smallest order value, in quote units.
    pub min_notional: Amount,
    pub maker_fee: Bps,
    pub taker_fee: Bps,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("base and quote asset must differ")]
    SameAsset,
    #[error("base lot and quote tick must be positive")]
    ZeroGrid,
    #[error("base lot and quote tick must each be below 2^64 so amounts cannot overflow")]
    GridTooLarge,
    #[error("min order size must be at least 1 lot and not above the max order size")]
    SizeBounds,
    #[error("fee rates must be at most 10000 bps")]
    FeeTooHigh,
}

impl MarketSpec {
    /// Checks the spec's own consistency. Ticks times lots times quote tick can exceed
    /// `u128`, so notional arithmetic is checked where it happens ([`MarketSpec::notional`]).
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.base == self.quote {
            return Err(SpecError::SameAsset);
        }
        if self.base_lot.is_zero() || self.quote_tick.is_zero() {
            return Err(SpecError::ZeroGrid);
        }
        if self.base_lot.0 > u64::MAX as u128 || self.quote_tick.0 > u64::MAX as u128 {
            return Err(SpecError::GridTooLarge);
        }
        if self.min_qty.is_zero() || self.min_qty > self.max_qty {
            return Err(SpecError::SizeBounds);
        }
        if self.maker_fee.0 as u128 > Bps::DENOMINATOR || self.taker_fee.0 as u128 > Bps::DENOMINATOR {
            return Err(SpecError::FeeTooHigh);
        }
        Ok(())
    }

    /// Base units in `qty` lots. `None` only on overflow, which bounded sizes make unreachable
    /// for valid orders (`max_qty` and `base_lot` are both at most `u64`).
    pub fn base_amount(&self, qty: QtyLots) -> Option<Amount> {
        (qty.0 as u128).checked_mul(self.base_lot.0).map(Amount)
    }

    /// Quote units of `qty` lots at `price`; `None` on overflow.
    pub fn notional(&self, price: PriceTicks, qty: QtyLots) -> Option<Amount> {
        (price.0 as u128).checked_mul(qty.0 as u128)?.checked_mul(self.quote_tick.0).map(Amount)
    }

    /// The fee rate an order may be charged at most: a post-only order only ever makes; any
    /// other order may make or take, so it is held to the higher rate.
    pub fn max_fee_rate(&self, post_only: bool) -> Bps {
        if post_only {
            self.maker_fee
        } else {
            self.maker_fee.max(self.taker_fee)
        }
    }
}

#[cfg(test)]
#[path = "../../unit_tests/domain/market.rs"]
pub(crate) mod tests;
