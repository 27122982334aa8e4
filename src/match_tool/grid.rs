//! Decimal prices and sizes at the edge, integer ticks and lots inside. A value off the grid
//! is refused, never rounded: rounding a price silently changes what a user asked for.

use std::str::FromStr;

use rust_decimal::Decimal;

use crate::domain::{PriceTicks, QtyLots};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grid {
    tick: Decimal,
    lot: Decimal,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GridError {
    #[error("{field} {value:?} is not a decimal number")]
    NotDecimal { field: &'static str, value: String },
    #[error("{field} {value} must be positive")]
    NotPositive { field: &'static str, value: String },
    #[error("{field} {value} is not a multiple of {step}")]
    OffGrid { field: &'static str, value: String, step: Decimal },
    #[error("{field} {value} is too large")]
    TooLarge { field: &'static str, value: String },
}

impl Grid {
    /// A grid with price step `tick` and size step `lot`, both positive decimals.
    pub fn new(tick: &str, lot: &str) -> Result<Grid, GridError> {
        let tick = positive("tick", tick)?;
        let lot = positive("lot", lot)?;
        Ok(Grid { tick, lot })
    }

    pub fn price(&self, field: &'static str, value: &str) -> Result<PriceTicks, GridError> {
        steps(field, value, self.tick).map(PriceTicks)
    }

    pub fn qty(&self, field: &'static str, value: &str) -> Result<QtyLots, GridError> {
        steps(field, value, self.lot).map(QtyLots)
    }

    /// The price as a decimal with the tick's number of decimal places.
    pub fn price_str(&self, price: PriceTicks) -> String {
        render(price.0, self.tick)
    }

    pub fn qty_str(&self, qty: QtyLots) -> String {
        render(qty.0, self.lot)
    }

    /// A quote amount counted in (tick x lot) units, as a decimal.
    pub fn quote_str(&self, units: u128) -> String {
        let step = self.tick * self.lot;
        let value = i128::try_from(units)
            .ok()
            .and_then(|u| Decimal::try_from_i128_with_scale(u, 0).ok())
            .and_then(|u| u.checked_mul(step));
        match value {
            Some(v) => v.normalize().to_string(),
            None => format!("{units}*{step}"),
        }
    }
}

fn positive(field: &'static str, value: &str) -> Result<Decimal, GridError> {
    let d = Decimal::from_str(value.trim())
        .map_err(|_| GridError::NotDecimal { field, value: value.chars().take(64).collect() })?;
    if d <= Decimal::ZERO {
        return Err(GridError::NotPositive { field, value: d.to_string() });
    }
    Ok(d)
}

fn steps(field: &'static str, value: &str, step: Decimal) -> Result<u64, GridError> {
    let d = positive(field, value)?;
    let too_large = || GridError::TooLarge { field, value: d.to_string() };
    let n = d.checked_div(step).ok_or_else(too_large)?;
    if !n.fract().is_zero() {
        return Err(GridError::OffGrid { field, value: d.to_string(), step });
    }
    u64::try_from(n).map_err(|_| too_large())
}

fn render(count: u64, step: Decimal) -> String {
    // u64 times a step of at most 28 significant digits can exceed Decimal's 96 bits only for
    // absurd steps; fall back to an exact product notation rather than a wrong number.
    match Decimal::from(count).checked_mul(step) {
        Some(v) => {
            let mut v = v;
            v.rescale(step.scale());
            v.to_string()
        }
        None => format!("{count}*{step}"),
    }
}

#[cfg(test)]
#[path = "../../unit_tests/match_tool/grid.rs"]
mod tests;
