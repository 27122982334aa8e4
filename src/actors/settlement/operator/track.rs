//! Tracking: reconciling with the chain after a start, and following every transaction in
//! flight until its nonce is final (confirmed, reverted and diagnosed, lost and sent again,
//! overdue and replaced, stuck and consumed).

use std::collections::BTreeSet;

use alloy::primitives::Bytes;
use alloy::sol_types::SolInterface;

use super::{bump, Operator, StepError};
use crate::actors::deps::ActorError;
use crate::chain::batch::encode_batch;
use crate::chain::contract::HobExchangeErrors;
use crate::events::EventStore;
use crate::settlement::chain::{CallRequest, Chain, ChainError, TxReceipt};
use crate::settlement::nonce::{Attempt, NonceEvent, Resolution, Slot, TxPurpose};
use crate::settlement::policy::{on_overdue, Overdue};
use crate::settlement::state::OperatorEvent;
use crate::settlement::trades::QueuedTrade;
use crate::settlement::tx::{self, TxPlan};
use crate::settlement::verdict::{verdict, Verdict, Void};
use crate::settlement::withdrawals::WithdrawalKey;

impl<S: EventStore + 'static, C: Chain + 'static> Operator<S, C> {
    /// Once after start: move past nonces the chain saw, send again what it has not mined,
    /// fill gaps, and learn the contract's batch index unless a batch transaction is out.
    pub(super) async fn reconcile(&mut self, now: u64) -> Result<(), StepError> {
        let counts = self.chain.nonce_counts(self.address).await?;
        let plan = self.state.nonces().reconcile(counts);
        let mut events: Vec<OperatorEvent> = plan.events.into_iter().map(OperatorEvent::Nonce).collect();
        if !self.state.any_possible() {
            let next = self.read_chain_index().await?;
            if next != self.state.next_chain_index() {
                events.push(OperatorEvent::ChainIndexSynced { next });
            }
        }
        self.commit(events, &[]).await?;
        for nonce in plan.resend {
            if let Some(slot) = self.state.nonces().slot(nonce).cloned() {
                self.send(&slot.latest().raw).await?;
            }
        }
        for nonce in plan.gaps {
            tracing::warn!(operator = %self.address, nonce, "filling a nonce gap with a self-transfer");
            self.sign_filler(nonce, now).await?;
        }
        tracing::info!(operator = %self.address, next_nonce = self.state.nonces().next(), "reconciled with the chain");
        Ok(())
    }

    pub(super) async fn read_chain_index(&self) -> Result<u64, StepError> {
        let call = CallRequest { from: self.address, to: self.config.exchange, data: tx::next_batch_index_call() };
        let returned = self.chain.call(&call).await?;
        tx::decode_next_batch_index(&returned).map_err(|e| StepError::Chain(ChainError::Transport(e.to_string())))
    }

    /// Looks at every transaction in flight (see the module doc). Only the lowest unmined
    /// nonce can be overdue: the wallet's later ones wait behind it, through no fault of their
    /// own, and are mined with it or after it.
    pub(super) async fn track(&mut self, now: u64) -> Result<(), StepError> {
        let slots: Vec<Slot> = self.state.nonces().slots().cloned().collect();
        if slots.is_empty() {
            return Ok(());
        }
        let head = self.chain.block_number().await?;
        let mut latest_count = None;
        let mut behind = false;
        for slot in slots {
            if let Some(receipt) = self.receipt_of(&slot).await? {
                self.unexplained.remove(&slot.nonce);
                if head + 1 >= receipt.block + self.config.confirmations {
                    self.finalize(&slot, receipt).await?;
                }
                continue;
            }
            let latest = match latest_count {
                Some(n) => n,
                None => *latest_count.insert(self.chain.nonce_counts(self.address).await?.latest),
            };
            if latest > slot.nonce {
                // Mined between the two reads, or used by a transaction signed elsewhere. The
                // latter is concluded only after a receipt timeout without any receipt: a node
                // whose receipts lag its nonce count must not make a mined settlement look
                // lost, or it would be sent again under the next batch index and settle twice.
                match self.receipt_of(&slot).await? {
                    Some(receipt) if head + 1 >= receipt.block + self.config.confirmations => {
                        self.finalize(&slot, receipt).await?
                    }
                    Some(_) => {}
                    None => {
                        let since = *self.unexplained.entry(slot.nonce).or_insert(now);
                        if now.saturating_sub(since) >= self.config.receipt_timeout.as_millis() as u64 {
                            self.unexplained.remove(&slot.nonce);
                            self.supersede(&slot).await?;
                        }
                    }
                }
                continue;
            }
            if now < self.retry_at_ms {
                continue;
            }
            let newest = slot.latest();
            let waiting_behind = std::mem::replace(&mut behind, true);
            if !self.chain.is_known(newest.hash).await? {
                // Dropped from the mempool, or taken out of the chain by a reorg.
                tracing::info!(operator = %self.address, nonce = slot.nonce, tx = %newest.hash, "sending a lost transaction again");
                bump(&self.counters.resends);
                if self.send(&newest.raw).await? {
                    continue;
                }
            } else if waiting_behind
                || now.saturating_sub(newest.signed_at_ms) < self.config.receipt_timeout.as_millis() as u64
            {
                continue;
            }
            self.overdue(&slot, now).await?;
        }
        Ok(())
    }

    async fn receipt_of(&self, slot: &Slot) -> Result<Option<TxReceipt>, StepError> {
        // Newest first: the one most likely mined.
        for attempt in slot.attempts.iter().rev() {
            if let Some(receipt) = self.chain.receipt(attempt.hash).await? {
                return Ok(Some(receipt));
            }
        }
        Ok(None)
    }

    /// The nonce is final: its transaction settled the batch, or reverted (then the reason
    /// decides what happens to the batch), or was a self-transfer or a stale attempt.
    async fn finalize(&mut self, slot: &Slot, receipt: TxReceipt) -> Result<(), StepError> {
        let resolution = Resolution::Mined {
            hash: receipt.hash,
            block: receipt.block,
            success: receipt.success,
            gas_used: receipt.gas_used,
        };
        let mut events = vec![OperatorEvent::Nonce(NonceEvent::Final { nonce: slot.nonce, resolution })];
        let purpose = slot.attempt(receipt.hash).map(|a| a.purpose);
        let mut diagnose = None;
        if let Some(TxPurpose::Withdrawal { user, nonce }) = purpose {
            let key = WithdrawalKey { user, nonce };
            if self.state.withdrawals().get(&key).is_some() {
                events.push(if receipt.success {
                    OperatorEvent::WithdrawalCompleted { key, tx: receipt.hash, block: receipt.block }
                } else {
                    // Checked with the node before it was sent: the state changed since (the
                    // vault balance, the nonce, the expiry). The user gets the funds back.
                    OperatorEvent::WithdrawalFailed { key, reason: "reverted on-chain".into() }
                });
            }
        }
        let open = match purpose {
            Some(TxPurpose::Batch { batch, chain_index }) => {
                self.state.batch(batch).map(|b| (batch, chain_index, b.trades.clone()))
            }
            _ => None,
        };
        if let Some((batch, chain_index, trades)) = open {
            if receipt.success {
                events.push(OperatorEvent::SettlementConfirmed {
                    batch,
                    chain_index,
                    tx: receipt.hash,
                    block: receipt.block,
                    trades,
                });
                self.streak = 0;
            } else if chain_index == self.state.next_chain_index() {
                diagnose = Some((batch, chain_index));
            } else {
                // Sent behind a batch that has not settled at the index before it: the index
                // did not follow, so it reverted through no fault of its own. It goes out
                // again, re-numbered, behind that batch (`next_send`); no failure counts.
                tracing::info!(operator = %self.address, batch, chain_index, "settlement reverted behind an earlier batch; it goes out again in order");
            }
        }
        self.commit(events, &[]).await?;
        if let Some((batch, chain_index)) = diagnose {
            tracing::warn!(operator = %self.address, tx = %receipt.hash, "settlement transaction reverted");
            self.diagnose(batch, chain_index).await?;
        }
        Ok(())
    }

    /// The chain used the nonce for a transaction not signed here.
    async fn supersede(&mut self, slot: &Slot) -> Result<(), StepError> {
        tracing::error!(operator = %self.address, nonce = slot.nonce, "nonce used by a transaction this operator did not sign");
        let event = OperatorEvent::Nonce(NonceEvent::Final { nonce: slot.nonce, resolution: Resolution::Superseded });
        Ok(self.commit(vec![event], &[]).await?)
    }

    /// Why an open batch's transaction reverted, asked of the node by running it again.
    async fn diagnose(&mut self, batch: u64, chain_index: u64) -> Result<(), StepError> {
        let trades: Vec<QueuedTrade> = self.state.batch_trades(batch).into_iter().cloned().collect();
        if self.state.batch(batch).is_none() {
            return Ok(());
        }
        if self.state.possible(batch) {
            // Another transaction of the batch is still out: until its fate is known, nothing
            // may be voided or re-indexed (see `Prepare::Wait`).
            let reason = "reverted while another transaction of the batch is out".to_owned();
            self.commit(vec![OperatorEvent::AttemptFailed { batch, reason }], &[]).await?;
            return Ok(());
        }
        let settle =
            trades.iter().map(|q| self.spec_of(q).and_then(|s| q.to_settle(s).ok())).collect::<Option<Vec<_>>>();
        let encoded = settle.and_then(|s| encode_batch(&s).ok());
        let reason = match encoded {
            None => "reverted; the batch no longer encodes".to_owned(),
            Some(encoded) => {
                let call = self.settle_call(chain_index, encoded.data.clone());
                match self.chain.estimate_gas(&call).await {
                    Ok(_) => "reverted on-chain; passes when run again (out of gas or a race)".to_owned(),
                    Err(ChainError::Reverted { data }) => match HobExchangeErrors::abi_decode(&data) {
                        Ok(error) => {
                            let refs: Vec<&QueuedTrade> = trades.iter().collect();
                            match verdict(&error, &encoded, &refs) {
                                Verdict::Void(voids) => return Ok(self.commit_voids(voids).await?),
                                Verdict::Reindex { expected } => {
                                    let synced = OperatorEvent::ChainIndexSynced { next: expected };
                                    let failed = OperatorEvent::AttemptFailed {
                                        batch,
                                        reason: format!("batch index moved to {expected}"),
                                    };
                                    return Ok(self.commit(vec![synced, failed], &[]).await?);
                                }
                                Verdict::Retry(reason) => reason,
                            }
                        }
                        Err(_) => format!("reverted with unknown data 0x{}", alloy::hex::encode(&data)),
                    },
                    Err(e) => format!("reverted; the node could not say why: {e}"),
                }
            }
        };
        let failed = OperatorEvent::AttemptFailed { batch, reason };
        self.commit(vec![failed], &[]).await?;
        self.back_off(self.now_ms());
        Ok(())
    }

    pub(super) async fn commit_voids(&mut self, voids: Vec<Void>) -> Result<(), ActorError> {
        let mut seen = BTreeSet::new();
        let events = voids
            .into_iter()
            .filter(|v| seen.insert(v.key))
            .filter_map(|v| self.state.void(&v.key, v.reason, v.detail, v.order))
            .collect();
        self.commit(events, &[]).await
    }

    /// A transaction outlived the receipt timeout: the batch failed once more; the nonce is
    /// re-sent with a higher fee, or, once stuck, consumed by a self-transfer (the batch then
    /// goes out again at a fresh nonce in `submit`).
    async fn overdue(&mut self, slot: &Slot, now: u64) -> Result<(), StepError> {
        let newest = slot.latest().clone();
        let mut stale = false;
        if let TxPurpose::Batch { batch, .. } = newest.purpose {
            if self.state.batch(batch).is_some() {
                let timeout_s = self.config.receipt_timeout.as_secs_f64();
                let reason = format!("nonce {} not mined within {timeout_s} s", slot.nonce);
                self.commit(vec![OperatorEvent::AttemptFailed { batch, reason }], &[]).await?;
            } else {
                // Its batch settled through another nonce: this call can only revert now, so
                // the cheapest transaction takes its nonce.
                stale = true;
            }
        }
        match on_overdue(slot.attempts.len(), self.config.stuck_after_attempts) {
            _ if stale => self.sign_filler(slot.nonce, now).await,
            Overdue::Consume if newest.purpose != TxPurpose::Filler => {
                tracing::warn!(operator = %self.address, nonce = slot.nonce, "nonce stuck: consuming it with a self-transfer");
                self.sign_filler(slot.nonce, now).await
            }
            // A self-transfer that is overdue is bumped like any other transaction.
            _ => {
                bump(&self.counters.fee_bumps);
                let plan = TxPlan { nonce: slot.nonce, ..self.plan_like(&newest, slot.nonce) };
                self.sign_and_send(plan, newest.purpose, now).await
            }
        }
    }

    /// The same call as `attempt`, ready to sign again (its price is set by `sign_and_send`).
    fn plan_like(&self, attempt: &Attempt, nonce: u64) -> TxPlan {
        match attempt.purpose {
            TxPurpose::Filler => tx::self_transfer(self.address, nonce, 0),
            TxPurpose::Batch { .. } | TxPurpose::Withdrawal { .. } => {
                // The calldata is the signed transaction's own: decode it from the stored bytes.
                let data = decoded_input(&attempt.raw).unwrap_or_default();
                TxPlan { nonce, gas_price: 0, gas_limit: attempt.gas_limit, to: self.config.exchange, data }
            }
        }
    }
}

/// The input of a signed transaction.
fn decoded_input(raw: &[u8]) -> Option<Bytes> {
    use alloy::consensus::{Transaction, TxEnvelope};
    use alloy::eips::eip2718::Decodable2718;
    TxEnvelope::decode_2718(&mut &raw[..]).ok().map(|e| e.input().clone())
}
