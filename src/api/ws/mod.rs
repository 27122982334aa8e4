//! The WebSocket endpoint `/ws` (protocol: docs/websocket.md).
//!
//! Each connection is two tasks: a reader that handles what the client sends
//! (`connection.rs`) and a writer that is the only one writing to the socket (`writer.rs`).
//! Everything bound for the client (pushes from the feeds, answers to requests) goes through
//! the connection's one bounded buffer (`feed::Outlet`), so a client that does not read fills
//! its own buffer and is dropped as a slow consumer, while its reader still answers promptly
//! and no feed ever waits for it.

pub mod connection;
pub mod protocol;
pub mod writer;

use std::sync::Arc;

use actix_web::{get, web, HttpRequest, HttpResponse};

use crate::api::auth::AuthMode;
use crate::api::feed::Outlet;
use crate::api::state::AppState;

#[utoipa::path(
    tag = "websocket",
    responses(
        (status = 101, description = "Switching to the WebSocket protocol described in docs/websocket.md"),
        (status = 400, description = "Not a WebSocket upgrade"),
        (status = 401, description = "An unknown or expired Bearer session token (development mode: a bad X-Hob-User)", body = crate::api::error::ErrorBody),
    ),
)]
#[get("/ws")]
pub async fn connect(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    // The connection acts for a user if it authenticated at the upgrade (a session's Bearer
    // token; development mode: X-Hob-User) or later with the `login` op; without either the
    // public channels still work.
    let presented = match state.auth {
        AuthMode::Signed => req.headers().contains_key(actix_web::http::header::AUTHORIZATION),
        AuthMode::DevInsecureHeader => req.headers().contains_key(crate::api::auth::DEV_USER_HEADER),
    };
    let user = match presented {
        true => Some(state.auth.user_of(&state.sessions, req.headers())?),
        false => None,
    };
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    let max = state.websocket.max_message_bytes;
    let stream = stream.max_frame_size(max).aggregate_continuations().max_continuation_size(max);
    let id = state.next_connection_id();
    let (outlet, inlet) = Outlet::new(id, state.websocket.send_buffer, state.metrics.ws_messages_out.clone());
    let state: Arc<AppState> = state.into_inner();
    let (control, control_rx) = tokio::sync::mpsc::channel(writer::CONTROL_BUFFER);
    let ping_every = std::time::Duration::from_millis(state.websocket.ping_interval_ms);
    actix_web::rt::spawn(writer::run(session, inlet, control_rx, ping_every, state.metrics.clone()));
    let ip = req.peer_addr().map(|a| a.ip());
    actix_web::rt::spawn(connection::run(state, connection::Connection::new(id, user, ip, outlet, control), stream));
    Ok(response)
}
