//! Balances per user. The fold is the domain's own: each user event goes through
//! `UserState::apply`, so the view can never disagree with the ledger's arithmetic, and the
//! rows are read off `account()`. The user state is kept in the view (as the user snapshot's
//! JSON) so the next catch-up continues from it instead of replaying the stream.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::{EventMeta, FoldError, View};
use crate::domain::{UserEvent, UserId, UserState};
use crate::events::user_payload::{decode_user_snapshot, encode_user_snapshot};

/// One asset's balance, in base units as decimal strings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceRow {
    pub available: String,
    pub locked: String,
    pub settling: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalancesView {
    pub user: String,
    /// By asset symbol.
    pub balances: BTreeMap<String, BalanceRow>,
    /// The fold's state; readers use `balances`.
    pub ledger: LedgerState,
}

/// A `UserState` stored as the user snapshot's JSON (`encode_user_snapshot`), the one
/// serialized form of it hob already promises to read back exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerState(pub UserState);

impl Serialize for LedgerState {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let value: Value = serde_json::from_slice(&encode_user_snapshot(&self.0)).map_err(serde::ser::Error::custom)?;
        value.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for LedgerState {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<LedgerState, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let bytes = serde_json::to_vec(&value).map_err(serde::de::Error::custom)?;
        decode_user_snapshot(&bytes).map(LedgerState).map_err(serde::de::Error::custom)
    }
}

impl BalancesView {
    pub fn state(&self) -> &UserState {
        &self.ledger.0
    }

    fn refresh_rows(&mut self) {
        self.balances = self
            .ledger
            .0
            .account()
            .balances()
            .map(|(asset, b)| {
                let row = BalanceRow {
                    available: b.available.0.to_string(),
                    locked: b.locked.0.to_string(),
                    settling: b.settling.0.to_string(),
                };
                (asset.to_string(), row)
            })
            .collect();
    }
}

impl View for BalancesView {
    const KIND: &'static str = "balances";
    type Key = UserId;
    type Event = UserEvent;

    fn empty(user: UserId) -> BalancesView {
        BalancesView { user: user.to_string(), balances: BTreeMap::new(), ledger: LedgerState(UserState::new(user)) }
    }

    fn apply(&mut self, _meta: EventMeta, event: &UserEvent) -> Result<(), FoldError> {
        self.ledger.0.apply(event).map_err(|e| FoldError(format!("ledger: {e}")))?;
        self.refresh_rows();
        Ok(())
    }
}
