//! Withdrawals: the users' signed withdrawals, executed by the operator wallet at its own
//! nonces (one nonce owner per wallet), tracked like any other transaction in `track.rs`.
//!
//! Each held withdrawal that no transaction could execute is checked with the node first: a
//! refusal (a bad signature, a vault balance short of it, an expired signature) fails it at
//! once and the user gets the funds back; otherwise it is signed at the next nonce, stored,
//! and sent. Its receipt, buried deep enough, completes or fails it (`track::finalize`).

use alloy::sol_types::SolInterface;

use super::{Operator, StepError};
use crate::chain::contract::HobExchangeErrors;
use crate::events::EventStore;
use crate::settlement::alert::Alert;
use crate::settlement::chain::{CallRequest, Chain, ChainError};
use crate::settlement::nonce::TxPurpose;
use crate::settlement::policy::gas_limit;
use crate::settlement::state::OperatorEvent;
use crate::settlement::tx::TxPlan;
use crate::settlement::withdrawals::{decode_withdrawal_auth, QueuedWithdrawal};

/// At most this many withdrawals are sent in one step, so a step always ends soon.
const MAX_WITHDRAWALS_PER_STEP: usize = 16;

impl<S: EventStore + 'static, C: Chain + 'static> Operator<S, C> {
    pub(super) async fn submit_withdrawals(&mut self, now: u64) -> Result<(), StepError> {
        if now < self.retry_at_ms {
            return Ok(());
        }
        let unsent: Vec<QueuedWithdrawal> = self
            .state
            .unsent_withdrawals()
            .into_iter()
            .filter(|w| !self.withdrawals_on_hold.contains(&w.key()))
            .take(MAX_WITHDRAWALS_PER_STEP)
            .cloned()
            .collect();
        for w in unsent {
            self.submit_withdrawal(w, now).await?;
        }
        Ok(())
    }

    async fn submit_withdrawal(&mut self, w: QueuedWithdrawal, now: u64) -> Result<(), StepError> {
        let key = w.key();
        let signed = match decode_withdrawal_auth(&w.auth) {
            Ok(signed) => signed,
            Err(e) => {
                let failed = OperatorEvent::WithdrawalFailed { key, reason: format!("unreadable: {e}") };
                return Ok(self.commit(vec![failed], &[]).await?);
            }
        };
        let call = CallRequest { from: self.address, to: self.config.exchange, data: signed.call_data() };
        let estimate = match self.chain.estimate_gas(&call).await {
            Ok(estimate) => estimate,
            Err(ChainError::Reverted { data }) => {
                let error = HobExchangeErrors::abi_decode(&data).ok();
                if let Some(HobExchangeErrors::WithdrawalNonceUsed(_)) = error {
                    // Only this operator executes withdrawals, and a user's nonce is accepted
                    // once: the nonce being used means this very withdrawal was paid out and
                    // its receipt was lost. Restoring the funds would pay twice, completing it
                    // without a receipt would be a guess: an operator looks.
                    self.withdrawals_on_hold.insert(key);
                    self.alerts.raise(Alert {
                        kind: "withdrawal_on_hold",
                        operator: self.address.to_string(),
                        market: None,
                        message: format!("withdrawal {key}: its nonce is already used on-chain"),
                        at_ms: now,
                    });
                    return Ok(());
                }
                let reason = match error {
                    Some(e) => revert_name(&e),
                    None => format!("reverted with unknown data 0x{}", alloy::hex::encode(&data)),
                };
                tracing::warn!(operator = %self.address, withdrawal = %key, %reason, "withdrawal refused by the chain");
                return Ok(self.commit(vec![OperatorEvent::WithdrawalFailed { key, reason }], &[]).await?);
            }
            Err(e) => return Err(StepError::Chain(e)),
        };
        let Some(limit) = gas_limit(estimate, self.config.batch.max_gas) else {
            let reason = format!("needs {estimate} gas, above the limit");
            return Ok(self.commit(vec![OperatorEvent::WithdrawalFailed { key, reason }], &[]).await?);
        };
        let nonce = self.state.nonces().next();
        let plan = TxPlan { nonce, gas_price: 0, gas_limit: limit, to: self.config.exchange, data: call.data };
        tracing::info!(operator = %self.address, withdrawal = %key, nonce, "sending a withdrawal");
        self.sign_and_send(plan, TxPurpose::Withdrawal { user: w.user, nonce: w.nonce }, now).await
    }
}

/// The contract error's name, the stable reason a failed withdrawal carries.
fn revert_name(error: &HobExchangeErrors) -> String {
    // `Debug` of a sol! error enum is `Variant(Variant { .. })`: its first word is the name.
    let text = format!("{error:?}");
    text.split(['(', ' ', '{']).next().unwrap_or("reverted").to_owned()
}
