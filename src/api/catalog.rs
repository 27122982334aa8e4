//! The markets and assets the server runs, as the edge sees them: each market's engine spec
//! with its decimal grid, and every asset's decimal places. Decimal text becomes ticks, lots
//! and base units here and nowhere else; a value off the grid is refused, never rounded.

use std::collections::BTreeMap;

use crate::api::amounts::{format_amount, parse_amount};
use crate::api::error::ApiError;
use crate::config::MarketDef;
use crate::domain::{Amount, AssetId, MarketId, PriceTicks, QtyLots};
use crate::match_tool::grid::{Grid, GridError};

#[derive(Clone, Debug)]
pub struct MarketEntry {
    pub def: MarketDef,
    grid: Grid,
}

#[derive(Clone, Debug)]
pub struct Catalog {
    markets: BTreeMap<MarketId, MarketEntry>,
    assets: BTreeMap<AssetId, u8>,
}

impl Catalog {
    /// `assets`: every asset's decimal places; each market's assets must be among them.
    pub fn new(defs: &[MarketDef], assets: impl IntoIterator<Item = (AssetId, u8)>) -> Result<Catalog, GridError> {
        let mut markets = BTreeMap::new();
        for def in defs {
            let grid = Grid::new(&def.tick_size.to_string(), &def.lot_size.to_string())?;
            markets.insert(def.spec.id, MarketEntry { def: def.clone(), grid });
        }
        Ok(Catalog { markets, assets: assets.into_iter().collect() })
    }

    /// The market named `id`, or `unknown_market`.
    pub fn market(&self, id: &str) -> Result<&MarketEntry, ApiError> {
        MarketId::new(id).ok().and_then(|m| self.markets.get(&m)).ok_or_else(|| ApiError::unknown_market(id))
    }

    pub fn market_by_id(&self, id: MarketId) -> Option<&MarketEntry> {
        self.markets.get(&id)
    }

    pub fn markets(&self) -> impl Iterator<Item = &MarketEntry> {
        self.markets.values()
    }

    /// The asset named `symbol` and its decimal places, or `unknown_asset`.
    pub fn asset(&self, symbol: &str) -> Result<(AssetId, u8), ApiError> {
        AssetId::new(symbol)
            .ok()
            .and_then(|a| self.assets.get(&a).map(|d| (a, *d)))
            .ok_or_else(|| ApiError::not_found("unknown_asset", format!("no asset {symbol:?}")))
    }

    /// An amount of `asset` as decimal text; base units when the asset is not configured
    /// (a stream may name an asset a past configuration had).
    pub fn amount_str(&self, asset: AssetId, amount: Amount) -> String {
        match self.assets.get(&asset) {
            Some(decimals) => format_amount(amount, *decimals),
            None => amount.0.to_string(),
        }
    }

    /// Parses an amount of `asset` given as decimal text.
    pub fn parse_amount(&self, field: &str, asset: AssetId, text: &str) -> Result<Amount, ApiError> {
        let decimals = self.assets.get(&asset).copied().unwrap_or(0);
        parse_amount(text, decimals).map_err(|e| ApiError::bad_request("invalid_amount", format!("{field}: {e}")))
    }
}

impl MarketEntry {
    pub fn id(&self) -> MarketId {
        self.def.spec.id
    }

    pub fn price(&self, field: &'static str, text: &str) -> Result<PriceTicks, ApiError> {
        self.grid.price(field, text).map_err(|e| grid_error(e, "off_grid_price"))
    }

    pub fn qty(&self, field: &'static str, text: &str) -> Result<QtyLots, ApiError> {
        self.grid.qty(field, text).map_err(|e| grid_error(e, "off_grid_size"))
    }

    pub fn price_str(&self, price: PriceTicks) -> String {
        self.grid.price_str(price)
    }

    pub fn qty_str(&self, qty: QtyLots) -> String {
        self.grid.qty_str(qty)
    }

    /// Quote base units as decimal text in the quote asset.
    pub fn quote_str(&self, amount: Amount) -> String {
        format_amount(amount, self.def.quote_decimals)
    }

    pub fn base_str(&self, amount: Amount) -> String {
        format_amount(amount, self.def.base_decimals)
    }
}

/// A grid refusal as the API states it: off the grid -> the domain's own reason code.
fn grid_error(e: GridError, off_grid: &'static str) -> ApiError {
    let code = match e {
        GridError::OffGrid { .. } => off_grid,
        GridError::NotDecimal { .. } => "invalid_number",
        GridError::NotPositive { .. } => "not_positive",
        GridError::TooLarge { .. } => "too_large",
    };
    ApiError::bad_request(code, e.to_string())
}
