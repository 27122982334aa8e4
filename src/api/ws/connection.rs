//! A connection's reader: parses what the client sends, manages its subscriptions, runs its
//! order entry (each request as its own task, a bounded number at a time, answered with the
//! request's id), keeps the dead-man switch, and on the way out unsubscribes everything and,
//! if the client opted in, cancels its open orders.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_ws::{AggregatedMessage, AggregatedMessageStream, ProtocolError};
use serde_json::Value;
use tokio::sync::{mpsc, Semaphore};

use super::protocol::{ClientMessage, Reply, CHANNELS, OPS};
use super::writer::Control;
use crate::api::error::ApiError;
use crate::api::feed::subscribers::{CLOSE_GOING_AWAY, CLOSE_NORMAL, CLOSE_TOO_BIG};
use crate::api::feed::{MarketTopic, Outlet, Refused, UserTopic};
use crate::api::sessions::now_ms;
use crate::api::state::AppState;
use crate::api::trading::{self, CancelTarget};
use crate::api::wire::{AmendOrderRequest, Interval};
use crate::domain::{MarketId, UserId};

/// One subscription of this connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Sub {
    Market(MarketId, MarketTopic),
    Heartbeat,
    User(UserTopic),
}

pub struct Connection {
    id: u64,
    user: Option<UserId>,
    /// When the session the connection logged in with expires (ms since the epoch); order
    /// entry and new private subscriptions are refused after it.
    session_expires_at_ms: Option<u64>,
    ip: Option<IpAddr>,
    outlet: Outlet,
    control: mpsc::Sender<Control>,
    subs: HashSet<Sub>,
    cancel_on_disconnect: bool,
    /// The dead-man switch: when it fires, and its period.
    dead_man: Option<(Instant, Duration)>,
}

impl Connection {
    pub fn new(
        id: u64,
        user: Option<UserId>,
        ip: Option<IpAddr>,
        outlet: Outlet,
        control: mpsc::Sender<Control>,
    ) -> Connection {
        Connection {
            id,
            user,
            session_expires_at_ms: None,
            ip,
            outlet,
            control,
            subs: HashSet::new(),
            cancel_on_disconnect: false,
            dead_man: None,
        }
    }

    fn reply(&self, reply: &Reply) {
        // A refusal means the connection is already being closed (gone, or too slow).
        let _ = self.outlet.send(reply.encode());
    }

    fn error(&self, id: Option<Value>, error: ApiError) {
        self.reply(&Reply::Error { id, error: error.body() });
    }

    fn user(&self) -> Result<UserId, ApiError> {
        if self.session_expires_at_ms.is_some_and(|at| at <= now_ms()) {
            return Err(ApiError::unauthorized_code("session_expired", "the session expired; send login again"));
        }
        self.user.ok_or_else(|| {
            ApiError::unauthorized(
                "this needs an authenticated connection: the login op with a session token (development mode: \
                 X-Hob-User at the upgrade)",
            )
        })
    }
}

pub async fn run(state: Arc<AppState>, mut conn: Connection, mut stream: AggregatedMessageStream) {
    state.metrics.ws_clients.inc();
    state.metrics.ws_connections.inc();
    conn.reply(&Reply::Welcome {
        connection_id: conn.id,
        user: conn.user.map(|u| u.to_string()),
        max_message_bytes: state.websocket.max_message_bytes,
    });
    let in_flight = Arc::new(Semaphore::new(state.websocket.max_in_flight));
    let idle = Duration::from_millis(state.websocket.idle_timeout_ms);
    let mut kill = conn.outlet.closing();
    let mut last_heard = Instant::now();
    let mut idle_check = actix_rt::time::interval(idle / 4);
    let mut stopping = state.stopping.clone();
    loop {
        let dead_man = conn.dead_man.map(|(at, _)| at);
        tokio::select! {
            _ = kill.changed() => break,
            _ = stopping.changed() => {
                conn.outlet.close(CLOSE_GOING_AWAY, "server shutting down".to_owned());
                break;
            }
            _ = idle_check.tick() => {
                if last_heard.elapsed() > idle {
                    conn.outlet.disconnect(format!("idle: nothing received for {} ms", idle.as_millis()));
                    break;
                }
            }
            _ = sleep_until(dead_man) => {
                conn.dead_man = None;
                if let Some(user) = conn.user {
                    let (state, outlet) = (state.clone(), conn.outlet.clone());
                    actix_web::rt::spawn(async move {
                        let reply = match trading::cancel_all(&state, user, None).await {
                            Ok(r) => Reply::DeadManTriggered { cancel_requested: r.cancel_requested },
                            Err(e) => Reply::Error { id: None, error: e.body() },
                        };
                        let _ = outlet.send(reply.encode());
                    });
                }
            }
            message = stream.recv() => {
                last_heard = Instant::now();
                match message {
                    None => break,
                    Some(Err(ProtocolError::Overflow)) => {
                        let max = state.websocket.max_message_bytes;
                        conn.outlet.close(CLOSE_TOO_BIG, format!("message too large: at most {max} bytes"));
                        break;
                    }
                    Some(Err(e)) => {
                        conn.outlet.disconnect(format!("protocol error: {e}"));
                        break;
                    }
                    Some(Ok(AggregatedMessage::Text(text))) => {
                        state.metrics.ws_messages_in.inc();
                        handle_text(&state, &mut conn, &in_flight, &text).await;
                    }
                    Some(Ok(AggregatedMessage::Binary(_))) => {
                        state.metrics.ws_messages_in.inc();
                        conn.error(None, ApiError::bad_request("malformed", "binary messages are not supported; send JSON text"));
                    }
                    Some(Ok(AggregatedMessage::Ping(bytes))) => {
                        let _ = conn.control.try_send(Control::Pong(bytes));
                    }
                    Some(Ok(AggregatedMessage::Pong(_))) => {}
                    Some(Ok(AggregatedMessage::Close(_))) => {
                        conn.outlet.close(CLOSE_NORMAL, "bye".to_owned());
                        break;
                    }
                }
            }
        }
    }
    finish(&state, &mut conn).await;
    state.metrics.ws_clients.dec();
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => actix_rt::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Unsubscribes everything; cancels the user's orders if the client asked for that.
async fn finish(state: &Arc<AppState>, conn: &mut Connection) {
    // Makes sure the writer ends too (a no-op if a reason was already given).
    conn.outlet.close(CLOSE_NORMAL, "connection closed".to_owned());
    for sub in conn.subs.drain() {
        match sub {
            Sub::Market(market, _) => {
                if let Some(feed) = state.markets.get(&market) {
                    feed.remove_connection(conn.id);
                }
            }
            Sub::Heartbeat => {
                state.heartbeat.unsubscribe(conn.id);
            }
            Sub::User(_) => {
                if let Some(user) = conn.user {
                    state.users.remove_connection(user, conn.id).await;
                }
            }
        }
    }
    if let (true, Some(user)) = (conn.cancel_on_disconnect, conn.user) {
        match trading::cancel_all(state, user, None).await {
            Ok(r) => tracing::info!(%user, cancelled = r.cancel_requested.len(), "cancel on disconnect"),
            Err(e) => tracing::warn!(%user, error = %e, "cancel on disconnect failed"),
        }
    }
}

async fn handle_text(state: &Arc<AppState>, conn: &mut Connection, in_flight: &Arc<Semaphore>, text: &str) {
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return conn.error(None, ApiError::bad_request("malformed", format!("not JSON: {e}"))),
    };
    let id = value.get("id").cloned();
    let limited = match conn.user {
        Some(user) => state.check_user_rate(user, Instant::now()),
        None => conn.ip.map_or(Ok(()), |ip| state.check_ip_rate(ip, Instant::now())),
    };
    if let Err(e) = limited {
        return conn.error(id, e);
    }
    match value.get("op").and_then(Value::as_str) {
        Some(op) if OPS.contains(&op) => {}
        _ => {
            let message = format!("`op` must be one of: {}", OPS.join(", "));
            return conn.error(id, ApiError::bad_request("unknown_op", message));
        }
    }
    let message = match serde_json::from_value::<ClientMessage>(value) {
        Ok(m) => m,
        Err(e) => return conn.error(id, ApiError::bad_request("malformed", e.to_string())),
    };
    match message {
        ClientMessage::Ping { id } => conn.reply(&Reply::Pong { id }),
        ClientMessage::Login { id, token } => match login(state, conn, &token) {
            Ok(result) => conn.reply(&Reply::Result { id, op: "login", result }),
            Err(e) => conn.error(id, e),
        },
        ClientMessage::Subscribe { id, channel, market, interval } => {
            // On success `subscribe` has sent the ack (before the snapshot).
            if let Err(e) = subscribe(state, conn, id.clone(), &channel, market.as_deref(), interval).await {
                conn.error(id, e);
            }
        }
        ClientMessage::Unsubscribe { id, channel, market, interval } => {
            match unsubscribe(state, conn, &channel, market.as_deref(), interval).await {
                Ok(()) => conn.reply(&Reply::Ack { id, op: "unsubscribe", channel, market, interval }),
                Err(e) => conn.error(id, e),
            }
        }
        ClientMessage::CancelOnDisconnect { id, enabled } => match conn.user() {
            Ok(_) => {
                conn.cancel_on_disconnect = enabled;
                conn.reply(&Reply::Result {
                    id,
                    op: "cancel_on_disconnect",
                    result: serde_json::json!({ "enabled": enabled }),
                });
            }
            Err(e) => conn.error(id, e),
        },
        ClientMessage::DeadMan { id, timeout_ms } => match conn.user() {
            Ok(_) => {
                let period = Duration::from_millis(timeout_ms);
                conn.dead_man = (timeout_ms > 0).then(|| (Instant::now() + period, period));
                conn.reply(&Reply::Result {
                    id,
                    op: "dead_man",
                    result: serde_json::json!({ "timeout_ms": timeout_ms }),
                });
            }
            Err(e) => conn.error(id, e),
        },
        order_entry => {
            let user = match conn.user() {
                Ok(user) => user,
                Err(e) => return conn.error(request_id(&order_entry), e),
            };
            // Bounded: past `max_in_flight` the reader waits, which slows the client down.
            let Ok(permit) = in_flight.clone().acquire_owned().await else { return };
            let (state, outlet) = (state.clone(), conn.outlet.clone());
            actix_web::rt::spawn(async move {
                let reply = entry(&state, user, order_entry).await;
                let _ = outlet.send(reply.encode());
                drop(permit);
            });
        }
    }
}

fn request_id(message: &ClientMessage) -> Option<Value> {
    match message {
        ClientMessage::Subscribe { id, .. }
        | ClientMessage::Unsubscribe { id, .. }
        | ClientMessage::Ping { id }
        | ClientMessage::Login { id, .. }
        | ClientMessage::Place { id, .. }
        | ClientMessage::Cancel { id, .. }
        | ClientMessage::CancelAll { id, .. }
        | ClientMessage::Amend { id, .. }
        | ClientMessage::Batch { id, .. }
        | ClientMessage::CancelOnDisconnect { id, .. }
        | ClientMessage::DeadMan { id, .. } => id.clone(),
    }
}

/// Binds the connection to a session's user. A connection acts for one user for its whole
/// life (its private subscriptions and cancel-on-disconnect are that user's), so a login as
/// someone else is refused; logging in again as the same user extends the session.
fn login(state: &AppState, conn: &mut Connection, token: &str) -> Result<Value, ApiError> {
    let session = state.sessions.session(token.trim(), now_ms())?;
    if conn.user.is_some_and(|u| u != session.user) {
        return Err(ApiError::conflict(
            "already_logged_in",
            "this connection acts for another user; open a new connection",
        ));
    }
    conn.user = Some(session.user);
    conn.session_expires_at_ms = Some(session.expires_at_ms);
    Ok(serde_json::json!({
        "user": session.user.to_string(),
        "agent": session.agent.map(|a| a.to_checksum(None)),
        "expires_at": session.expires_at_ms,
    }))
}

/// Runs one order-entry request and states its answer.
async fn entry(state: &AppState, user: UserId, message: ClientMessage) -> Reply {
    let id = request_id(&message);
    let (op, result) = match message {
        ClientMessage::Place { order, .. } => ("place", trading::place(state, user, order).await.and_then(to_value)),
        ClientMessage::Cancel { order_id, client_order_id, .. } => {
            let target = CancelTarget { order_id, client_order_id };
            ("cancel", trading::cancel(state, user, &target).await.and_then(to_value))
        }
        ClientMessage::CancelAll { market, .. } => {
            ("cancel_all", trading::cancel_all(state, user, market.as_deref()).await.and_then(to_value))
        }
        ClientMessage::Amend { order_id, price, qty, nonce, signed_order, .. } => {
            let req = AmendOrderRequest { price, qty, nonce, signed_order };
            ("amend", trading::amend(state, user, &order_id, &req).await.and_then(to_value))
        }
        ClientMessage::Batch { ops, .. } => ("batch", trading::batch(state, user, ops).await.and_then(to_value)),
        // The reader answers every other op itself and never hands it here.
        _ => ("unknown", Err(ApiError::bad_request("unknown_op", "not an order-entry op"))),
    };
    match result {
        Ok(result) => Reply::Result { id, op, result },
        Err(e) => Reply::Error { id, error: e.body() },
    }
}

fn to_value<T: serde::Serialize>(v: T) -> Result<Value, ApiError> {
    serde_json::to_value(v).map_err(|e| ApiError::internal(e.to_string()))
}

/// What a subscribe or unsubscribe names.
fn target(
    state: &AppState,
    conn: &Connection,
    channel: &str,
    market: Option<&str>,
    interval: Option<Interval>,
) -> Result<Sub, ApiError> {
    let market_id = |state: &AppState| {
        let name = market
            .ok_or_else(|| ApiError::bad_request("missing_market", format!("channel {channel} needs a market")))?;
        Ok::<_, ApiError>(state.market(name)?.entry().id())
    };
    if interval.is_some() && channel != "candles" {
        return Err(ApiError::bad_request("malformed", "interval is for the candles channel only"));
    }
    let sub = match channel {
        "l2" => Sub::Market(market_id(state)?, MarketTopic::L2),
        "trades" => Sub::Market(market_id(state)?, MarketTopic::Trades),
        "candles" => Sub::Market(market_id(state)?, MarketTopic::Candles(interval.unwrap_or(Interval::M1))),
        "ticker" => Sub::Market(market_id(state)?, MarketTopic::Ticker),
        "heartbeat" => Sub::Heartbeat,
        "orders" | "fills" | "balances" => {
            conn.user()?;
            Sub::User(match channel {
                "orders" => UserTopic::Orders,
                "fills" => UserTopic::Fills,
                _ => UserTopic::Balances,
            })
        }
        other => {
            let shown: String = other.chars().take(40).collect();
            return Err(ApiError::bad_request(
                "unknown_channel",
                format!("no channel {shown:?}; channels: {}", CHANNELS.join(", ")),
            ));
        }
    };
    if matches!(sub, Sub::Heartbeat | Sub::User(_)) && market.is_some() {
        return Err(ApiError::bad_request("malformed", format!("channel {channel} takes no market")));
    }
    Ok(sub)
}

async fn subscribe(
    state: &Arc<AppState>,
    conn: &mut Connection,
    id: Option<Value>,
    channel: &str,
    market: Option<&str>,
    interval: Option<Interval>,
) -> Result<(), ApiError> {
    let sub = target(state, conn, channel, market, interval)?;
    if !conn.subs.contains(&sub) && conn.subs.len() >= state.websocket.max_subscriptions {
        return Err(ApiError::bad_request(
            "too_many_subscriptions",
            format!("at most {} subscriptions per connection", state.websocket.max_subscriptions),
        ));
    }
    // The ack goes first, then the snapshot, then the updates.
    let ack = Reply::Ack {
        id,
        op: "subscribe",
        channel: channel.to_owned(),
        market: market.map(str::to_owned),
        interval: matches!(sub, Sub::Market(_, MarketTopic::Candles(_))).then(|| interval.unwrap_or(Interval::M1)),
    };
    let outlet = conn.outlet.clone();
    let sent: Result<bool, Refused> = match sub {
        Sub::Market(id, topic) => {
            let feed = state.markets.get(&id).ok_or_else(|| ApiError::unknown_market(id.as_str()))?;
            conn.reply(&ack);
            feed.subscribe(topic, outlet)
        }
        Sub::Heartbeat => {
            conn.reply(&ack);
            Ok(state.heartbeat.subscribe(outlet))
        }
        Sub::User(topic) => {
            let user = conn.user()?;
            conn.reply(&ack);
            state
                .users
                .subscribe(user, topic, outlet)
                .await
                .map_err(|e| ApiError::unavailable("feed_unavailable", e.to_string()))?
        }
    };
    // A refusal means the connection is closing; nothing more to tell it.
    if sent.is_ok() {
        conn.subs.insert(sub);
    }
    Ok(())
}

async fn unsubscribe(
    state: &Arc<AppState>,
    conn: &mut Connection,
    channel: &str,
    market: Option<&str>,
    interval: Option<Interval>,
) -> Result<(), ApiError> {
    let sub = target(state, conn, channel, market, interval)?;
    if !conn.subs.remove(&sub) {
        return Err(ApiError::bad_request("not_subscribed", format!("not subscribed to {channel}")));
    }
    match sub {
        Sub::Market(id, topic) => {
            if let Some(feed) = state.markets.get(&id) {
                feed.unsubscribe(topic, conn.id);
            }
        }
        Sub::Heartbeat => {
            state.heartbeat.unsubscribe(conn.id);
        }
        Sub::User(topic) => {
            if let Some(user) = conn.user {
                state.users.unsubscribe(user, topic, conn.id).await;
            }
        }
    }
    Ok(())
}
