//! Withdrawals over REST: a request signed by the wallet itself, and the caller's history.
//!
//! The server rebuilds the EIP-712 `Withdrawal` the contract will hash (the caller as user,
//! the asset's token, the amount in base units, nonce, expiry) and recovers its signer, which
//! must be the caller's wallet: an agent key, or an agent's session, can trade but never move
//! funds out. Only then does the user's actor debit available funds (to withdrawing) and hand
//! the signed withdrawal to the settlement operator; nothing changes on a refusal.

use actix_web::{get, post, web, HttpRequest};
use alloy::primitives::{Address, U256};

use crate::api::auth::{session_of, AuthMode, AuthUser};
use crate::api::error::{ApiError, ErrorBody};
use crate::api::rest::auth::parse_signature;
use crate::api::sessions::now_ms;
use crate::api::state::AppState;
use crate::api::wire::{millis, WithdrawalInfo, WithdrawalRequest};
use crate::chain::eip712::Withdrawal;
use crate::domain::{UserEvent, UserId};
use crate::events::user_payload::decode_user_event;
use crate::events::{EventStore, StreamId};
use crate::settlement::withdrawals::{encode_withdrawal_auth, SignedWithdrawal};

type Json<T> = Result<web::Json<T>, ApiError>;

/// The newest withdrawals `GET /withdrawals` lists.
const HISTORY_LIMIT: usize = 100;

#[utoipa::path(
    tag = "account",
    params(("Authorization" = String, Header, description = "Bearer <session token>; development mode: X-Hob-User instead")),
    request_body = WithdrawalRequest,
    responses(
        (status = 200, description = "Debited (withdrawing); the operator executes it on-chain", body = WithdrawalInfo),
        (status = 400, description = "Malformed amount, nonce, expiry or signature; zero_amount; withdrawal_expired", body = ErrorBody),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 403, description = "agent_cannot_withdraw (an agent's session); wrong_signer (not the wallet's own signature)", body = ErrorBody),
        (status = 404, description = "unknown_asset", body = ErrorBody),
        (status = 409, description = "withdrawal_nonce_used", body = ErrorBody),
        (status = 422, description = "insufficient_balance: more than is available", body = ErrorBody),
        (status = 503, description = "withdrawals_unavailable: no token is configured for the asset", body = ErrorBody),
    ),
)]
#[post("/withdrawals")]
pub async fn request(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: AuthUser,
    body: web::Json<WithdrawalRequest>,
) -> Json<WithdrawalInfo> {
    if state.auth == AuthMode::Signed && session_of(&state.sessions, req.headers())?.agent.is_some() {
        return Err(ApiError::forbidden("agent_cannot_withdraw", "an agent key may trade, never withdraw"));
    }
    let user = user.0;
    let (asset, _) = state.catalog.asset(&body.asset)?;
    let amount = state.catalog.parse_amount("amount", asset, &body.amount)?;
    if amount.is_zero() {
        return Err(ApiError::bad_request("zero_amount", "amount must be positive"));
    }
    let nonce = decimal("nonce", &body.nonce)?;
    let expiry = body.expiry.as_deref().map_or(Ok(0), |e| decimal("expiry", e))?;
    if expiry != 0 && expiry <= now_ms() / 1_000 {
        return Err(ApiError::bad_request("withdrawal_expired", "the signed expiry has passed"));
    }
    let token = state.withdrawal_token(asset).ok_or_else(|| {
        ApiError::unavailable("withdrawals_unavailable", format!("no token is configured for {asset}"))
    })?;
    let withdrawal = Withdrawal { user: Address::from(user.0), token, amount: U256::from(amount.0), nonce, expiry };
    let signed = SignedWithdrawal { withdrawal, signature: parse_signature(&body.signature)? };
    let signer =
        signed.signer(&state.domain).map_err(|e| ApiError::unauthorized_code("bad_signature", e.to_string()))?;
    if signer != Address::from(user.0) {
        let message = format!("signed by {signer}, not by the wallet {user} (agents may not withdraw)");
        return Err(ApiError::forbidden("wrong_signer", message));
    }
    state.engine.request_withdrawal(user, nonce, asset, amount, encode_withdrawal_auth(&signed)).await?;
    let requested_at = now_ms() as i64;
    Ok(web::Json(WithdrawalInfo {
        nonce: nonce.to_string(),
        asset: asset.to_string(),
        amount: state.catalog.amount_str(asset, amount),
        status: "withdrawing".into(),
        reason: None,
        requested_at,
        ended_at: None,
    }))
}

#[utoipa::path(
    tag = "account",
    params(("Authorization" = String, Header, description = "Bearer <session token>; development mode: X-Hob-User instead")),
    responses(
        (status = 200, description = "The caller's newest withdrawals (at most 100), newest first", body = Vec<WithdrawalInfo>),
        (status = 401, body = ErrorBody),
    ),
)]
#[get("/withdrawals")]
pub async fn history(state: web::Data<AppState>, user: AuthUser) -> Json<Vec<WithdrawalInfo>> {
    Ok(web::Json(read_history(&state, user.0).await?))
}

/// The user's withdrawals from its stream: each request, then its outcome.
async fn read_history(state: &AppState, user: UserId) -> Result<Vec<WithdrawalInfo>, ApiError> {
    let stored = state
        .engine
        .store()
        .read_stream(&StreamId::user(user), 1)
        .await
        .map_err(|e| ApiError::unavailable("store_unavailable", e.to_string()))?;
    let mut list: Vec<WithdrawalInfo> = Vec::new();
    for e in stored.into_iter().filter(|e| e.event_type.starts_with("user.Withdrawal")) {
        let at = millis(e.occurred_at);
        let event = decode_user_event(&e.event_type, e.schema_version, e.payload)
            .map_err(|err| ApiError::internal(format!("{} v{}: {err}", e.event_type, e.version)))?;
        let end = |list: &mut Vec<WithdrawalInfo>, nonce: u64, status: &str, reason: Option<String>| {
            if let Some(w) = list.iter_mut().rev().find(|w| w.nonce == nonce.to_string()) {
                w.status = status.to_owned();
                w.reason = reason;
                w.ended_at = Some(at);
            }
        };
        match event {
            UserEvent::WithdrawalRequested { nonce, asset, amount, .. } => list.push(WithdrawalInfo {
                nonce: nonce.to_string(),
                asset: asset.to_string(),
                amount: state.catalog.amount_str(asset, amount),
                status: "withdrawing".into(),
                reason: None,
                requested_at: at,
                ended_at: None,
            }),
            UserEvent::WithdrawalCompleted { nonce, .. } => end(&mut list, nonce, "completed", None),
            UserEvent::WithdrawalFailed { nonce, reason, .. } => end(&mut list, nonce, "failed", Some(reason)),
            _ => {}
        }
    }
    list.reverse();
    list.truncate(HISTORY_LIMIT);
    Ok(list)
}

fn decimal(field: &'static str, text: &str) -> Result<u64, ApiError> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| text.parse().ok()).flatten().ok_or_else(|| {
        ApiError::bad_request("invalid_number", format!("{field}: a decimal integer string, got {text:?}"))
    })
}
