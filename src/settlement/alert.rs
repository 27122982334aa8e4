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
mod tests {
    // Test code: an `unwrap`/`expect` that fails is the test failing, with its message.
    use super::*;

    #[test]
    fn alerts_are_counted_and_the_recent_ones_kept() {
        let alerts = Alerts::new(None);
        for i in 0..RECENT_ALERTS + 5 {
            alerts.raise(Alert {
                kind: "trade_voided",
                operator: "0x01".into(),
                market: None,
                message: i.to_string(),
                at_ms: i as u64,
            });
        }
        assert_eq!(alerts.count(), (RECENT_ALERTS + 5) as u64);
        let recent = alerts.recent();
        assert_eq!(recent.len(), RECENT_ALERTS);
        assert_eq!(recent[0].message, "5", "the oldest are dropped first");
    }

    /// A one-request HTTP server on a free port: hands the body it received to the channel.
    fn one_shot_server() -> (String, std::sync::mpsc::Receiver<String>) {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/alerts", listener.local_addr().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            (&stream).write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").unwrap();
            tx.send(String::from_utf8(body).unwrap()).unwrap();
        });
        (url, rx)
    }

    #[actix_rt::test]
    async fn an_alert_is_posted_to_the_webhook_as_json() {
        let (url, received) = one_shot_server();
        let alerts = Alerts::new(Some(url));
        let alert = Alert {
            kind: "market_halted",
            operator: "0x01".into(),
            market: Some("BTC-USDT".into()),
            message: "halted".into(),
            at_ms: 7,
        };
        alerts.raise(alert);
        let mut body = None;
        for _ in 0..250 {
            if let Ok(b) = received.try_recv() {
                body = Some(b);
                break;
            }
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
        let body: serde_json::Value = serde_json::from_str(&body.expect("the webhook got the alert")).unwrap();
        assert_eq!(body["kind"], "market_halted");
        assert_eq!(body["market"], "BTC-USDT");
    }
}
