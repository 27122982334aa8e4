//! The invariants that span streams, checked over the facts the replay recorded: conservation
//! per asset, every trade matched by exactly one fill on each side, every settled trade in
//! exactly one confirmed batch, every voided trade compensated on both sides. Pure.

use std::collections::BTreeSet;

use super::facts::{At, Facts, Fill};
use super::report::{Check, Findings};
use crate::domain::{AssetId, OrderId, Trade, UserId};
use crate::settlement::TradeKey;

/// Runs every cross-stream check.
pub fn check_all(facts: &Facts, findings: &mut Findings) {
    fills_match_trades(facts, findings);
    conservation(facts, findings);
    settled_once(facts, findings);
    voids_compensated(facts, findings);
}

fn place(at: &At) -> (Option<&str>, Option<u64>) {
    (Some(&at.stream), Some(at.version))
}

fn user_stream(user: UserId) -> String {
    format!("user:{user}")
}

/// Every market trade has exactly one fill in the maker's stream and one in the taker's, equal
/// to the trade; every fill has its trade.
pub fn fills_match_trades(facts: &Facts, findings: &mut Findings) {
    let check = Check::FillsMatchTrades;
    // Fill entries a trade side found: when that is all of them, no fill lacks its trade.
    let mut matched = 0usize;
    for (key, (at, trade)) in &facts.trades {
        findings.count(check, 1);
        for (role, order, user) in
            [("maker", trade.maker_order, trade.maker_user), ("taker", trade.taker_order, trade.taker_user)]
        {
            let fills = facts.fills.get(&(*key, order)).map_or(&[][..], Vec::as_slice);
            // (A trade naming one order as both sides finds its entry once.)
            let again = role == "taker" && trade.taker_order == trade.maker_order;
            matched += usize::from(!fills.is_empty() && !again);
            let (s, v) = place(at);
            match fills {
                [] => findings.violate(
                    check,
                    s,
                    v,
                    format!("trade {key}: no fill of {role} order {order} in {}", user_stream(user)),
                ),
                [fill] => {
                    if fill.user != user {
                        let msg = format!("fill of trade {key} is in the stream of another user than the {role}");
                        let (s, v) = place(&fill.at);
                        findings.violate(check, s, v, msg);
                    } else if fill.trade != *trade {
                        let msg =
                            format!("fill of trade {key} differs from the trade in {} v{}", at.stream, at.version);
                        let (s, v) = place(&fill.at);
                        findings.violate(check, s, v, msg);
                    }
                }
                more => {
                    let mut more: Vec<&Fill> = more.iter().collect();
                    more.sort_by(|a, b| a.at.cmp(&b.at));
                    for fill in more.iter().skip(1) {
                        let msg = format!("trade {key}: {role} order {order} filled {} times", more.len());
                        let (s, v) = place(&fill.at);
                        findings.violate(check, s, v, msg);
                    }
                }
            }
        }
    }
    if matched == facts.fills.len() {
        return;
    }
    // Reported in stream order, whatever order the fills are kept in.
    let mut orphans: Vec<(&At, TradeKey)> = facts
        .fills
        .iter()
        .filter(|((key, _), _)| !facts.trades.contains_key(key))
        .flat_map(|((key, _), fills)| fills.iter().map(|fill| (&fill.at, *key)))
        .collect();
    orphans.sort();
    for (at, key) in orphans {
        let (s, v) = place(at);
        findings.violate(check, s, v, format!("fill of trade {key}, which no market stream holds"));
    }
}

/// Per asset: deposits - withdrawals = sum of users' balances + fees collected, where fees
/// collected are the fees of every fill not voided.
pub fn conservation(facts: &Facts, findings: &mut Findings) {
    let check = Check::Conservation;
    let mut fees: std::collections::BTreeMap<AssetId, u128> = Default::default();
    for ((key, order), fills) in &facts.fills {
        if facts.user_voids.contains_key(&(*key, *order)) {
            continue;
        }
        for fill in fills {
            let entry = fees.entry(fill.fee_asset).or_default();
            *entry = entry.saturating_add(fill.fee);
        }
    }
    let assets: BTreeSet<AssetId> = facts
        .deposits
        .keys()
        .chain(facts.withdrawals.keys())
        .chain(facts.balances.keys())
        .chain(fees.keys())
        .copied()
        .collect();
    for asset in assets {
        findings.count(check, 1);
        let get = |m: &std::collections::BTreeMap<AssetId, u128>| m.get(&asset).copied().unwrap_or(0);
        let (deposited, withdrawn) = (get(&facts.deposits), get(&facts.withdrawals));
        let (held, fee) = (get(&facts.balances), get(&fees));
        let net = deposited.checked_sub(withdrawn);
        let total = held.checked_add(fee);
        if net.is_none() || net != total {
            let msg = format!(
                "asset {asset}: deposits {deposited} - withdrawals {withdrawn} != balances {held} + fees {fee}"
            );
            findings.violate(check, None, None, msg);
        }
    }
}

/// Every trade in a confirmed batch is a real trade, confirmed once, and not also voided.
pub fn settled_once(facts: &Facts, findings: &mut Findings) {
    let check = Check::SettledOnce;
    for (key, places) in &facts.confirmed {
        let Some((first, again)) = places.split_first() else { continue };
        findings.count(check, 1);
        let (s, v) = place(first);
        if !facts.trades.contains_key(key) {
            findings.violate(check, s, v, format!("confirmed trade {key} is in no market stream"));
        }
        for other in again {
            let (s2, v2) = place(other);
            let msg = format!("trade {key} confirmed again (first in {} v{})", first.stream, first.version);
            findings.violate(check, s2, v2, msg);
        }
        if let Some((void_at, _)) = facts.operator_voids.get(key).and_then(|v| v.first()) {
            let (vs, vv) = place(void_at);
            findings.violate(check, vs, vv, format!("trade {key} is voided but was settled in a confirmed batch"));
        }
    }
}

/// What a party's void must move: (reclaimed, restored), as `UserState::decide_void` does.
fn expected_void(trade: &Trade, order: OrderId, base: AssetId, quote: AssetId) -> ((AssetId, u128), (AssetId, u128)) {
    if trade.buyer().0 == order {
        ((base, trade.base_amount.0), (quote, trade.quote_amount.0.saturating_add(trade.buyer_fee().0)))
    } else {
        ((quote, trade.quote_amount.0.saturating_sub(trade.seller_fee().0)), (base, trade.base_amount.0))
    }
}

/// Every trade an operator voided is undone exactly once in each party's stream, by exactly
/// what the trade moved; no user voids a trade no operator voided.
pub fn voids_compensated(facts: &Facts, findings: &mut Findings) {
    let check = Check::VoidsCompensated;
    for (key, voids) in &facts.operator_voids {
        let Some(((at, trade), more)) = voids.split_first() else { continue };
        findings.count(check, 1);
        let (s, v) = place(at);
        for (again, _) in more {
            let (s2, v2) = place(again);
            findings.violate(check, s2, v2, format!("trade {key} voided again"));
        }
        for (role, order, user) in
            [("maker", trade.maker_order, trade.maker_user), ("taker", trade.taker_order, trade.taker_user)]
        {
            let user_voids = facts.user_voids.get(&(*key, order)).map_or(&[][..], Vec::as_slice);
            let fill = facts.fills.get(&(*key, order)).and_then(|f| f.first());
            match (user_voids, fill) {
                ([], _) => findings.violate(
                    check,
                    s,
                    v,
                    format!("voided trade {key}: the {role} ({}) was not compensated", user_stream(user)),
                ),
                ([one], Some(fill)) => {
                    let quote = fill.fee_asset;
                    let base = if one.reclaimed.0 == quote { one.restored.0 } else { one.reclaimed.0 };
                    let (reclaimed, restored) = expected_void(trade, order, base, quote);
                    if one.user != user || one.reclaimed != reclaimed || one.restored != restored {
                        let msg = format!(
                            "voided trade {key}: the {role}'s compensation moves {:?}/{:?}, the trade moved {:?}/{:?}",
                            one.reclaimed, one.restored, reclaimed, restored
                        );
                        let (us, uv) = place(&one.at);
                        findings.violate(check, us, uv, msg);
                    }
                }
                ([one], None) => {
                    let (us, uv) = place(&one.at);
                    findings.violate(check, us, uv, format!("voided trade {key}: compensated without a fill"));
                }
                (more, _) => {
                    for extra in more.iter().skip(1) {
                        let (us, uv) = place(&extra.at);
                        findings.violate(check, us, uv, format!("voided trade {key}: the {role} compensated twice"));
                    }
                }
            }
        }
    }
    for ((key, _), user_voids) in &facts.user_voids {
        if !facts.operator_voids.contains_key(key) {
            for void in user_voids {
                let (s, v) = place(&void.at);
                findings.violate(check, s, v, format!("trade {key} voided by the user with no operator void"));
            }
        }
    }
}
