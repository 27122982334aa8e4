//! Alerts: what a human must look at. Each is logged at error level, counted (a metric the
//! operator API can export), kept among the recent ones, and posted as JSON to the webhook if
//! one is configured. Posting is fire-and-forget with a timeout: an alerting endpoint that is
//! down must never hold settlement up.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

/// Alerts kept in memory for the operator API and tests.
pub const RECENT_ALERTS: usize = 100;
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Alert {
    /// A stable code: `trade_voided`, `settlement_failed`, `market_halted`, `stuck`.
    pub kind: &'static str,
    pub operator: String,
    pub market: Option<String>,
    pub message: String,
    pub at_ms: u64,
}

#[derive(Debug, Default)]
pub struct Alerts {
    raised: AtomicU64,
    recent: Mutex<VecDeque<Alert>>,
    webhook: Option<String>,
}

impl Alerts {
    pub fn new(webhook: Option<String>) -> Alerts {
        Alerts { webhook, ..Alerts::default() }
    }

    /// Raises `alert`. Must be called on an async runtime when a webhook is configured.
    pub fn raise(&self, alert: Alert) {
        tracing::error!(
            kind = alert.kind,
            operator = %alert.operator,
            market = alert.market.as_deref().unwrap_or("-"),
            message = %alert.message,
            "settlement alert"
        );
        self.raised.fetch_add(1, Ordering::Relaxed);
        {
            // A poisoned lock means a panic mid-push; the deque is still a deque.
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            if recent.len() == RECENT_ALERTS {
                recent.pop_front();
            }
            recent.push_back(alert.clone());
        }
        if let Some(url) = self.webhook.clone() {
            let body = serde_json::to_vec(&alert).unwrap_or_default();
            actix_rt::spawn(async move {
                let client = alloy::transports::http::reqwest::Client::new();
                let sent = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .timeout(WEBHOOK_TIMEOUT)
                    .body(body)
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status().is_success() => {}
                    Ok(response) => tracing::warn!(status = %response.status(), "alert webhook refused the alert"),
                    Err(e) => tracing::warn!(error = %e, "alert webhook unreachable"),
                }
            });
        }
    }

    /// Alerts raised since start.
    pub fn count(&self) -> u64 {
        self.raised.load(Ordering::Relaxed)
    }

    pub fn recent(&self) -> Vec<Alert> {
        self.recent.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
    }
}

#[cfg(test)]
#[path = "../../unit_tests/settlement/alert.rs"]
mod tests;
