//! Every refusal the API gives, as one JSON shape with a stable code:
//! `{"code": "off_grid_price", "message": "..."}` and the matching HTTP status. Codes are a
//! public interface (clients branch on them); messages are for people and may change.

use std::fmt;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::{Deserialize, Serialize};

use crate::actors::ActorError;
use crate::domain::{LedgerError, UserReject};
use crate::events::StreamId;

/// The retry hint of `hosted_elsewhere`: long enough not to hammer, short against a lease ttl.
const HOSTED_ELSEWHERE_RETRY_MS: u64 = 1_000;
use crate::engine::EngineError;

/// The body of every error response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable snake_case code, e.g. `unknown_market`, `off_grid_price`, `rate_limited`.
    pub code: String,
    pub message: String,
    /// Set on `rate_limited`: how long to wait before retrying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after_ms: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), retry_after_ms: None }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, code, message)
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// A 401 with a more precise code than `unauthorized` (`challenge_expired`, ...).
    pub fn unauthorized_code(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, code, message)
    }

    pub fn unavailable(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    pub fn unknown_market(id: &str) -> ApiError {
        let shown: String = id.chars().take(40).collect();
        ApiError::not_found("unknown_market", format!("no market {shown:?}"))
    }

    pub fn rate_limited(retry_after: std::time::Duration) -> ApiError {
        let ms = u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX).max(1);
        ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "rate_limited",
            message: format!("too many requests; retry in {ms} ms"),
            retry_after_ms: Some(ms),
        }
    }

    /// The stream's actor runs on another node (`owner`, when known): a load balancer must
    /// route a user's traffic to one node (sticky by user); if that node died, its lease
    /// moves to a live node within the lease ttl, so a retry then succeeds here.
    pub fn hosted_elsewhere(stream: &StreamId, owner: Option<String>) -> ApiError {
        let at = owner.map_or_else(|| "another node".to_owned(), |o| format!("node {o}"));
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "hosted_elsewhere",
            message: format!("{stream} is hosted by {at}; this node asked for it: retry shortly"),
            retry_after_ms: Some(HOSTED_ELSEWHERE_RETRY_MS),
        }
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody { code: self.code.to_owned(), message: self.message.clone(), retry_after_ms: self.retry_after_ms }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(ms) = self.retry_after_ms {
            // Retry-After is in whole seconds; round up so a client that obeys it succeeds.
            response.insert_header((header::RETRY_AFTER, ms.div_ceil(1_000).to_string()));
        }
        response.json(self.body())
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> ApiError {
        match e {
            EngineError::Rejected(reject) => reject.into(),
            EngineError::UnknownMarket(m) => ApiError::unknown_market(m.as_str()),
            EngineError::Actor(ActorError::HostedElsewhere { stream, owner }) => {
                ApiError::hosted_elsewhere(&stream, owner)
            }
            EngineError::Actor(_) | EngineError::Mailbox(_) => {
                tracing::warn!(error = %e, "engine unavailable for a request");
                ApiError::unavailable("engine_unavailable", format!("{e}; retry"))
            }
            EngineError::BadRecord(_) => ApiError::internal(e.to_string()),
        }
    }
}

impl From<UserReject> for ApiError {
    fn from(r: UserReject) -> ApiError {
        let message = r.to_string();
        match r {
            UserReject::DuplicateClientOrderId { .. } => ApiError::conflict("duplicate_client_order_id", message),
            UserReject::NonceUsed => ApiError::conflict("nonce_used", message),
            UserReject::NonceTooOld => ApiError::conflict("nonce_too_old", message),
            UserReject::WrongUser => ApiError::new(StatusCode::FORBIDDEN, "not_owner", message),
            UserReject::MarketMismatch { .. } => ApiError::bad_request("market_mismatch", message),
            UserReject::Grid(reason) => ApiError::bad_request(reason.code(), message),
            UserReject::Ledger(LedgerError::InsufficientBalance { .. }) => {
                ApiError::unprocessable("insufficient_balance", message)
            }
            UserReject::Ledger(LedgerError::MarketBuyNeedsWorstPrice) => {
                ApiError::bad_request("market_buy_needs_worst_price", message)
            }
            UserReject::Ledger(_) => ApiError::unprocessable("ledger_refused", message),
            UserReject::UnknownOrder => ApiError::not_found("unknown_order", message),
            UserReject::NotAmendable => ApiError::unprocessable("not_amendable", message),
            UserReject::AmendPending => ApiError::conflict("amend_pending", message),
            UserReject::CancelPending => ApiError::conflict("cancel_pending", message),
            UserReject::TooManyOpenOrders { .. } => ApiError::unprocessable("too_many_open_orders", message),
            UserReject::ZeroAmount => ApiError::bad_request("zero_amount", message),
            UserReject::WithdrawalNonceUsed => ApiError::conflict("withdrawal_nonce_used", message),
        }
    }
}

impl From<crate::api::feed::FeedError> for ApiError {
    fn from(e: crate::api::feed::FeedError) -> ApiError {
        tracing::warn!(error = %e, "a private feed could not be read");
        ApiError::unavailable("feed_unavailable", e.to_string())
    }
}
