//! One load client: a WebSocket connection logged in as one trader, sending its pre-signed
//! `place` requests at their scheduled times and matching each answer to its request id.
//!
//! Open loop: the client never waits for an answer before the next send. When it wakes late
//! (a stall, a busy thread) it sends everything already due at once, and each order's
//! latency still runs from its scheduled time.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use awc::ws;
use bytestring::ByteString;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Notify;

use crate::client::socket::{Socket, TradingSocket};
use crate::loadgen::stats::{InFlight, Recorder};
use crate::loadgen::LoadgenError;

/// How long connecting and logging in may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

/// A connected, logged-in client.
pub struct Connection {
    sink: SplitSink<Socket, ws::Message>,
    stream: SplitStream<Socket>,
}

/// What one client will send: request texts (ids 0..) and, for each, its send time as an
/// offset from the start of the run; orders due before `warmup` are sent but not counted.
#[derive(Clone, Debug, Default)]
pub struct ClientPlan {
    pub requests: Vec<String>,
    pub due: Vec<Duration>,
    pub warmup: Duration,
}

impl ClientPlan {
    /// The orders that count in the report.
    pub fn measured(&self) -> u64 {
        self.due.iter().filter(|d| **d >= self.warmup).count() as u64
    }
}

/// What one client saw.
#[derive(Clone, Debug, Default)]
pub struct ClientRun {
    /// Every order the server accepted (warm-up included), by id.
    pub acked_order_ids: Vec<String>,
    /// Counted orders sent and never answered.
    pub in_flight_at_end: u64,
    /// Why the connection ended early, if it did.
    pub lost: Option<String>,
}

/// The parts of a server message a client reads.
#[derive(Deserialize)]
struct Answer {
    #[serde(rename = "type")]
    kind: String,
    id: Option<Value>,
    code: Option<String>,
    result: Option<Value>,
}

/// Opens the WebSocket and logs in with a session token.
pub async fn connect(ws_url: &str, token: &str) -> Result<Connection, LoadgenError> {
    let setup = async {
        let mut socket = TradingSocket::connect(ws_url).await?;
        socket.login(token).await?;
        let (sink, stream) = socket.into_parts();
        Ok(Connection { sink, stream })
    };
    tokio::time::timeout(SETUP_TIMEOUT, setup).await.map_err(|_| {
        LoadgenError::Client(crate::client::ClientError::WebSocket(format!(
            "no login answer from {ws_url} in {SETUP_TIMEOUT:?}"
        )))
    })?
}

impl Connection {
    async fn close(mut self) {
        let _ = self.sink.send(ws::Message::Close(None)).await;
    }
}

/// Sends `plan` from `start` on, records every answer in `recorder`, and waits for the last
/// answers until `drain_until`. `wake` is notified at each send time (the pacer); tokio's
/// coarser timer is the fallback.
pub async fn drive(
    mut conn: Connection,
    mut plan: ClientPlan,
    start: Instant,
    drain_until: Instant,
    recorder: Rc<RefCell<Recorder>>,
    wake: Arc<Notify>,
) -> ClientRun {
    let mut in_flight = InFlight::default();
    let mut run = ClientRun::default();
    let total = plan.requests.len().min(plan.due.len());
    let mut next = 0;
    loop {
        // Send everything due, late or not, stamped with its scheduled time.
        let now = Instant::now();
        while next < total && start + plan.due[next] <= now {
            let measured = plan.due[next] >= plan.warmup;
            let text = std::mem::take(&mut plan.requests[next]);
            if let Err(e) = conn.sink.feed(ws::Message::Text(ByteString::from(text))).await {
                run.lost = Some(e.to_string());
                break;
            }
            in_flight.sent(next, start + plan.due[next], now, measured);
            recorder.borrow_mut().sent(measured);
            next += 1;
        }
        if run.lost.is_none() {
            if let Err(e) = conn.sink.flush().await {
                run.lost = Some(e.to_string());
            }
        }
        if run.lost.is_some() || (next == total && in_flight.outstanding() == 0) {
            break;
        }
        let wake_at = if next < total { start + plan.due[next] } else { drain_until };
        if next == total && Instant::now() >= drain_until {
            break;
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake_at)) => {}
            frame = conn.stream.next() => match frame {
                Some(Ok(ws::Frame::Text(bytes))) => answer(&bytes, &mut in_flight, &recorder, &mut run),
                Some(Ok(ws::Frame::Ping(bytes))) => {
                    let _ = conn.sink.send(ws::Message::Pong(bytes)).await;
                }
                Some(Ok(ws::Frame::Close(reason))) => run.lost = Some(format!("closed by the server: {reason:?}")),
                Some(Ok(_)) => {}
                Some(Err(e)) => run.lost = Some(e.to_string()),
                None => run.lost = Some("the connection ended".into()),
            },
        }
        if run.lost.is_some() {
            break;
        }
    }
    let measured_unsent = plan.due[next..total].iter().filter(|d| **d >= plan.warmup).count() as u64;
    recorder.borrow_mut().not_sent += measured_unsent;
    run.in_flight_at_end = in_flight.outstanding_measured();
    conn.close().await;
    run
}

fn answer(bytes: &[u8], in_flight: &mut InFlight, recorder: &RefCell<Recorder>, run: &mut ClientRun) {
    let at = Instant::now();
    let Ok(answer) = serde_json::from_slice::<Answer>(bytes) else { return };
    let Some(index) = answer.id.as_ref().and_then(Value::as_u64).and_then(|i| usize::try_from(i).ok()) else {
        return;
    };
    let outcome = match answer.kind.as_str() {
        "result" => Ok(()),
        "error" => Err(answer.code.as_deref().unwrap_or("unknown")),
        _ => return,
    };
    let Some(answered) = in_flight.answered(index, at) else { return };
    if outcome.is_ok() {
        if let Some(id) = answer.result.as_ref().and_then(|r| r["order_id"].as_str()) {
            run.acked_order_ids.push(id.to_owned());
        }
    }
    recorder.borrow_mut().answered(answered, at, outcome);
}
