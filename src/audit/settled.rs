//! Off-chain settled balances: what each user's vault balance on the exchange contract should
//! be once settlement has quiesced.
//!
//! **Settled balance** of (user, asset) = the user's deposits - withdrawals (from the user
//! stream) + the user's net side of every trade in a batch a settlement operator recorded as
//! `SettlementConfirmed` (buyer: + base amount, - quote amount - buyer fee; seller: - base
//! amount, + quote amount - seller fee). Trades not yet in a confirmed batch, and voided
//! trades, count for nothing: on-chain they never happened. Pure.

use std::collections::BTreeMap;

use super::facts::Facts;
use crate::domain::{AssetId, MarketId, MarketSpec, Trade, UserId};

/// The definition above, as the report states it.
pub const SETTLED_DEFINITION: &str = "deposits - withdrawals + the user's net side of every trade in a confirmed \
settlement batch (buyer: +base, -quote -buyer fee; seller: -base, +quote -seller fee); unconfirmed and voided trades \
count for nothing";

/// Signed per (user, asset): a negative value is itself a finding (a vault cannot go below 0).
pub type Settled = BTreeMap<(UserId, AssetId), i128>;

/// Settled balances of every user that deposited, withdrew or traded in a confirmed batch.
/// A confirmed trade whose market spec is unknown is returned as an error naming it.
pub fn settled_balances(facts: &Facts, specs: &BTreeMap<MarketId, MarketSpec>) -> (Settled, Vec<String>) {
    let mut out = Settled::new();
    let mut errors = Vec::new();
    let mut add = |user: UserId, asset: AssetId, delta: i128| {
        let e = out.entry((user, asset)).or_default();
        *e = e.saturating_add(delta);
    };
    let signed = |v: u128| i128::try_from(v).unwrap_or(i128::MAX);
    for (&(user, asset), &v) in &facts.user_deposits {
        add(user, asset, signed(v));
    }
    for (&(user, asset), &v) in &facts.user_withdrawals {
        add(user, asset, -signed(v));
    }
    for key in facts.confirmed.keys() {
        let Some((_, trade)) = facts.trades.get(key) else { continue };
        let Some(spec) = specs.get(&key.market) else {
            errors.push(format!("confirmed trade {key}: market spec unknown"));
            continue;
        };
        for (user, asset, delta) in sides(trade, spec) {
            add(user, asset, delta);
        }
    }
    (out, errors)
}

/// Each party's change per asset when `trade` settles.
fn sides(t: &Trade, spec: &MarketSpec) -> [(UserId, AssetId, i128); 4] {
    let signed = |v: u128| i128::try_from(v).unwrap_or(i128::MAX);
    let (buyer, seller) = (t.buyer().1, t.seller().1);
    let paid = signed(t.quote_amount.0).saturating_add(signed(t.buyer_fee().0));
    let got = signed(t.quote_amount.0).saturating_sub(signed(t.seller_fee().0));
    [
        (buyer, spec.base, signed(t.base_amount.0)),
        (buyer, spec.quote, -paid),
        (seller, spec.base, -signed(t.base_amount.0)),
        (seller, spec.quote, got),
    ]
}
