//! A connection's writer: the only task that writes to the socket. It drains the
//! connection's buffer, answers and sends keepalive pings, and closes the socket with a code
//! and a reason when the connection is ended (by the client, the reader, or a feed that found
//! the client too slow).

use std::time::Duration;

use actix_web::web::Bytes;
use actix_ws::{CloseCode, CloseReason, Session};
use tokio::sync::mpsc;

use crate::api::feed::subscribers::{Closing, CLOSE_GOING_AWAY, CLOSE_NORMAL, CLOSE_TOO_BIG};
use crate::api::feed::Inlet;
use crate::api::metrics::Metrics;

/// Control frames waiting for the writer; past it a client's pings go unanswered until it
/// reads (it is not reading anyway).
pub const CONTROL_BUFFER: usize = 8;
/// How long a close may wait for a client that does not read before the socket is dropped.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Frames the reader asks the writer to send.
#[derive(Debug)]
pub enum Control {
    Pong(Bytes),
}

pub async fn run(
    mut session: Session,
    mut inlet: Inlet,
    mut control: mpsc::Receiver<Control>,
    ping_every: Duration,
    metrics: std::sync::Arc<Metrics>,
) {
    let mut ping = actix_rt::time::interval(ping_every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    let closing = loop {
        tokio::select! {
            biased;
            _ = inlet.kill.changed() => break inlet.kill.borrow().clone(),
            message = inlet.rx.recv() => {
                let Some(text) = message else { break None };
                // A client that stopped reading blocks this write; the kill switch still ends it.
                tokio::select! {
                    sent = session.text(text) => if sent.is_err() { break None },
                    _ = inlet.kill.changed() => break inlet.kill.borrow().clone(),
                }
            }
            frame = control.recv() => match frame {
                Some(Control::Pong(bytes)) => if session.pong(&bytes).await.is_err() { break None },
                None => break inlet.kill.borrow().clone(),
            },
            _ = ping.tick() => if session.ping(b"hob").await.is_err() { break None },
        }
    };
    let Some(Closing { code, reason }) = closing else {
        // The client is gone; nothing to say.
        return;
    };
    let label = match code {
        CLOSE_NORMAL | CLOSE_GOING_AWAY => None,
        CLOSE_TOO_BIG => Some("too_large"),
        _ if reason.starts_with("slow consumer") => Some("slow_consumer"),
        _ if reason.starts_with("idle") => Some("idle"),
        _ => Some("policy"),
    };
    if let Some(label) = label {
        metrics.ws_dropped.with_label_values(&[label]).inc();
    }
    let close = CloseReason { code: CloseCode::from(code), description: Some(reason) };
    let _ = tokio::time::timeout(CLOSE_WAIT, session.close(Some(close))).await;
}
