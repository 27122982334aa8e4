//! Who a request acts for: the one seam authentication plugs into.
//!
//! By default the server runs in signed mode: a caller logs in by signing a server challenge
//! (`rest::auth`), gets a session token, and sends it as `Authorization: Bearer <token>` on
//! private requests (or in the WebSocket `login` op). Orders additionally carry their own
//! EIP-712 signature (`api::signing`), because the session only proves who is asking, while
//! the order's signature is what settlement puts on-chain.
//!
//! The development mode `--dev-insecure-user-header` takes the user from the `X-Hob-User`
//! header, unchecked, so the trading flow can be exercised without a wallet; it is off by
//! default and must never face a network anyone else can reach. Handlers only ever see
//! `AuthUser`, so they do not depend on the mode.

use std::future::{ready, Ready};
use std::time::Instant;

use actix_web::dev::Payload;
use actix_web::http::header::HeaderMap;
use actix_web::{web, FromRequest, HttpRequest};

use crate::api::error::ApiError;
use crate::api::sessions::{now_ms, Session, Sessions};
use crate::api::state::AppState;
use crate::domain::UserId;

/// The development-only identity header.
pub const DEV_USER_HEADER: &str = "x-hob-user";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMode {
    /// Sessions from signed login challenges; orders signed with EIP-712.
    Signed,
    /// DEVELOPMENT ONLY: `X-Hob-User: 0x...` names the user, unchecked; a signed order is
    /// still checked when one is sent.
    DevInsecureHeader,
}

impl AuthMode {
    /// Whether the login routes are mounted.
    pub fn login_routes(self) -> bool {
        self == AuthMode::Signed
    }

    /// Whether every order must carry a signature.
    pub fn orders_signed(self) -> bool {
        self == AuthMode::Signed
    }

    /// The user a request (or a WebSocket upgrade) acts for.
    pub fn user_of(self, sessions: &Sessions, headers: &HeaderMap) -> Result<UserId, ApiError> {
        match self {
            AuthMode::Signed => Ok(session_of(sessions, headers)?.user),
            AuthMode::DevInsecureHeader => {
                let value = headers
                    .get(DEV_USER_HEADER)
                    .ok_or_else(|| ApiError::unauthorized("missing X-Hob-User header (development mode)"))?;
                let text = value.to_str().map_err(|_| ApiError::unauthorized("X-Hob-User is not text"))?;
                UserId::from_hex(text.trim()).map_err(|e| ApiError::unauthorized(format!("X-Hob-User: {e}")))
            }
        }
    }
}

/// The session an `Authorization: Bearer <token>` header names.
pub fn session_of(sessions: &Sessions, headers: &HeaderMap) -> Result<Session, ApiError> {
    let token = bearer(headers).ok_or_else(|| {
        ApiError::unauthorized("Authorization: Bearer <session token> required; log in at POST /api/v1/auth/login")
    })?;
    sessions.session(token, now_ms())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// An authenticated user, within its rate limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthUser(pub UserId);

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = Ready<Result<AuthUser, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

fn authenticate(req: &HttpRequest) -> Result<AuthUser, ApiError> {
    let state = req.app_data::<web::Data<AppState>>().ok_or_else(|| ApiError::internal("no app state"))?;
    let user = state.auth.user_of(&state.sessions, req.headers())?;
    state.check_user_rate(user, Instant::now())?;
    Ok(AuthUser(user))
}

/// The operator API's caller: presented the configured bearer token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Operator;

impl FromRequest for Operator {
    type Error = ApiError;
    type Future = Ready<Result<Operator, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(operator(req))
    }
}

fn operator(req: &HttpRequest) -> Result<Operator, ApiError> {
    let state = req.app_data::<web::Data<AppState>>().ok_or_else(|| ApiError::internal("no app state"))?;
    let Some(expected) = &state.operator_token else {
        return Err(ApiError::unauthorized("the operator API is disabled: no operator token is configured"));
    };
    let given = bearer(req.headers())
        .ok_or_else(|| ApiError::unauthorized("operator API: Authorization: Bearer <token> required"))?;
    if !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        return Err(ApiError::unauthorized("operator API: wrong token"));
    }
    Ok(Operator)
}

/// Compares without stopping at the first difference, so timing does not reveal how much of
/// a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_exactly() {
        assert!(constant_time_eq(b"secret-token", b"secret-token"));
        assert!(!constant_time_eq(b"secret-token", b"secret-tokem"));
        assert!(!constant_time_eq(b"secret", b"secret-token"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    #[test]
    fn the_dev_header_counts_only_in_development_mode() {
        let sessions = Sessions::new(crate::config::AuthConfig::default());
        let mut headers = HeaderMap::new();
        headers.insert(
            actix_web::http::header::HeaderName::from_static(DEV_USER_HEADER),
            actix_web::http::header::HeaderValue::from_static("0x0101010101010101010101010101010101010101"),
        );
        assert_eq!(AuthMode::Signed.user_of(&sessions, &headers).unwrap_err().code, "unauthorized");
        assert_eq!(AuthMode::DevInsecureHeader.user_of(&sessions, &headers), Ok(UserId([1; 20])));
        assert!(AuthMode::DevInsecureHeader.user_of(&sessions, &HeaderMap::new()).is_err());
    }
}
