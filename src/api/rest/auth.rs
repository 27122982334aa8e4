//! Signing and logging in: the EIP-712 schema a wallet signs with, login by signing a server
//! challenge, and registering an agent key with the owner's signed consent.

use actix_web::{get, post, web};
use alloy::primitives::{Address, Signature};
use serde_json::{json, Map, Value};

use crate::api::auth::AuthUser;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::sessions::now_ms;
use crate::api::state::AppState;
use crate::api::wire::{AgentRequest, AgentResponse, ChallengeRequest, ChallengeResponse, LoginRequest, LoginResponse};
use crate::chain::eip712::{signing_schema, AgentAuthorization};
use crate::domain::UserId;

type Json<T> = Result<web::Json<T>, ApiError>;

/// Bytes of an `r || s || v` signature.
const SIGNATURE_BYTES: usize = 65;

#[utoipa::path(
    tag = "auth",
    responses((
        status = 200,
        description = "The EIP-712 domain and types (`eth_signTypedData_v4` shape, without `primaryType` and \
                       `message`) of `Order`, `Withdrawal` and `AgentAuthorization`; each market's on-chain \
                       id and the smallest `maxFeeBps` it accepts; the token each asset's `Withdrawal` names",
        body = Object,
    )),
)]
#[get("/eip712")]
pub async fn eip712(state: web::Data<AppState>) -> web::Json<Value> {
    let mut schema = signing_schema(&state.domain);
    let markets: Vec<Value> = state
        .catalog
        .markets()
        .map(|m| {
            let spec = &m.def.spec;
            json!({
                "market": spec.id.to_string(),
                "chain_market_id": m.def.chain_market_id,
                "min_max_fee_bps": spec.maker_fee.0.max(spec.taker_fee.0),
            })
        })
        .collect();
    // The token each asset's `Withdrawal` names (empty until the chain is set up).
    let tokens: Vec<Value> = state
        .withdrawal_tokens()
        .into_iter()
        .map(|(asset, token)| json!({ "asset": asset.to_string(), "token": token.to_checksum(None) }))
        .collect();
    if let Value::Object(fields) = &mut schema {
        fields.insert("markets".into(), Value::Array(markets));
        fields.insert("withdrawal_tokens".into(), Value::Array(tokens));
    }
    web::Json(schema)
}

#[utoipa::path(
    tag = "auth",
    request_body = ChallengeRequest,
    responses(
        (status = 200, description = "Sign `message` with personal_sign and send it to /auth/login", body = ChallengeResponse),
        (status = 400, description = "Not an address", body = ErrorBody),
        (status = 503, description = "Too many challenges waiting", body = ErrorBody),
    ),
)]
#[post("/auth/challenge")]
pub async fn challenge(state: web::Data<AppState>, body: web::Json<ChallengeRequest>) -> Json<ChallengeResponse> {
    let user = UserId::from_hex(body.address.trim())
        .map_err(|e| ApiError::bad_request("invalid_address", format!("address: {e}")))?;
    let (nonce, challenge) = state.sessions.challenge(user, state.chain_id, now_ms())?;
    Ok(web::Json(ChallengeResponse { nonce, message: challenge.message, expires_at: challenge.expires_at_ms }))
}

#[utoipa::path(
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "A session token", body = LoginResponse),
        (status = 400, description = "Malformed signature", body = ErrorBody),
        (status = 401, description = "unknown_challenge, challenge_expired, bad_signature, wrong_signer", body = ErrorBody),
    ),
)]
#[post("/auth/login")]
pub async fn login(state: web::Data<AppState>, body: web::Json<LoginRequest>) -> Json<LoginResponse> {
    let signature = parse_signature(&body.signature)?;
    let (token, session) = state.sessions.login(&body.nonce, &signature, now_ms())?;
    Ok(web::Json(LoginResponse {
        token,
        user: session.user.to_string(),
        agent: session.agent.map(|a| a.to_checksum(None)),
        expires_at: session.expires_at_ms,
    }))
}

#[utoipa::path(
    tag = "auth",
    params(("Authorization" = String, Header, description = "Bearer <session token>")),
    request_body = AgentRequest,
    responses(
        (status = 200, description = "The agent may sign orders for the owner until `expiry`", body = AgentResponse),
        (status = 400, description = "Malformed or expired", body = ErrorBody),
        (status = 403, description = "not_owner, wrong_signer", body = ErrorBody),
        (status = 409, description = "nonce_used", body = ErrorBody),
    ),
)]
#[post("/auth/agents")]
pub async fn authorize_agent(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<AgentRequest>,
) -> Json<AgentResponse> {
    let authorization = parse_authorization(&body.authorization)?;
    let signature = parse_signature(&body.signature)?;
    state.sessions.authorize_agent(user.0, &authorization, &signature, &state.domain, now_ms() / 1_000)?;
    Ok(web::Json(AgentResponse {
        owner: authorization.owner.to_checksum(None),
        agent: authorization.agent.to_checksum(None),
        expiry: authorization.expiry,
    }))
}

/// `0x` + 65 bytes; `v` 27/28 or 0/1.
pub fn parse_signature(text: &str) -> Result<Signature, ApiError> {
    let bad = || ApiError::bad_request("malformed_signature", "a signature is 0x + 130 hex digits (r || s || v)");
    let hex = text.trim().strip_prefix("0x").ok_or_else(bad)?;
    let bytes = alloy::hex::decode(hex).map_err(|_| bad())?;
    if bytes.len() != SIGNATURE_BYTES {
        return Err(bad());
    }
    Signature::try_from(bytes.as_slice()).map_err(|_| bad())
}

fn parse_authorization(value: &Value) -> Result<AgentAuthorization, ApiError> {
    let fields = value.as_object().ok_or_else(|| field_error("authorization"))?;
    Ok(AgentAuthorization {
        owner: address(fields, "owner")?,
        agent: address(fields, "agent")?,
        expiry: integer(fields, "expiry")?,
        nonce: integer(fields, "nonce")?,
    })
}

fn field_error(field: &str) -> ApiError {
    ApiError::bad_request("malformed_authorization", format!("missing or malformed field {field:?}"))
}

fn address(fields: &Map<String, Value>, field: &str) -> Result<Address, ApiError> {
    fields.get(field).and_then(Value::as_str).and_then(|t| t.parse().ok()).ok_or_else(|| field_error(field))
}

/// A decimal string, as wallets are given integers (JSON numbers lose precision above 2^53).
fn integer(fields: &Map<String, Value>, field: &str) -> Result<u64, ApiError> {
    let text = fields.get(field).and_then(Value::as_str).ok_or_else(|| field_error(field))?;
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(field_error(field));
    }
    text.parse().map_err(|_| field_error(field))
}
