//! Order entry over REST: place, cancel, cancel-all, amend, batch; and the development
//! faucet. Orders carry their EIP-712 signature (`api::signing`); see `api::auth` for sessions.

use actix_web::{delete, patch, post, web};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::api::auth::AuthUser;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::state::AppState;
use crate::api::trading::{self, CancelTarget};
use crate::api::wire::{
    AmendOrderRequest, AmendResponse, BatchRequest, BatchResponse, CancelAllResponse, CancelResponse, FaucetRequest,
    FaucetResponse, PlaceOrderRequest, PlaceOrderResponse,
};

type Json<T> = Result<web::Json<T>, ApiError>;

#[utoipa::path(
    tag = "trading",
    params(("Authorization" = String, Header, description = "Bearer <session token>; development mode: X-Hob-User instead")),
    request_body = PlaceOrderRequest,
    responses(
        (status = 200, description = "Funds locked; the order is on its way to the market", body = PlaceOrderResponse),
        (status = 400, description = "Malformed, off the grid or out of bounds; or the signed order does not fit \
                                        the request (signature_required, signed_field_mismatch, fee_cap_too_low, \
                                        order_expired, malformed_signed_order)", body = ErrorBody),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 403, description = "wrong_signer: signed by neither the user nor an agent it authorised", body = ErrorBody),
        (status = 404, description = "Unknown market", body = ErrorBody),
        (status = 409, description = "Nonce used, market halted", body = ErrorBody),
        (status = 422, description = "Insufficient balance, too many open orders", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ),
)]
#[post("/orders")]
pub async fn place(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<PlaceOrderRequest>,
) -> Json<PlaceOrderResponse> {
    Ok(web::Json(trading::place(&state, user.0, body.into_inner()).await?))
}

#[utoipa::path(
    tag = "trading",
    params(
        ("Authorization" = String, Header, description = "Bearer <session token>; development mode: X-Hob-User instead"),
        ("order_id" = String, Path, description = "The exchange's order id"),
    ),
    responses((status = 200, body = CancelResponse), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
)]
#[delete("/orders/{order_id}")]
pub async fn cancel(state: web::Data<AppState>, user: AuthUser, path: web::Path<String>) -> Json<CancelResponse> {
    let target = CancelTarget { order_id: Some(path.into_inner()), client_order_id: None };
    Ok(web::Json(trading::cancel(&state, user.0, &target).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CancelAllQuery {
    /// Only this market's orders; every market's without it.
    pub market: Option<String>,
}

#[utoipa::path(
    tag = "trading",
    params(("Authorization" = String, Header, description = "Bearer <session token>; development mode: X-Hob-User instead"), CancelAllQuery),
    responses((status = 200, body = CancelAllResponse), (status = 404, body = ErrorBody)),
)]
#[delete("/orders")]
pub async fn cancel_all(
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<CancelAllQuery>,
) -> Json<CancelAllResponse> {
    Ok(web::Json(trading::cancel_all(&state, user.0, q.market.as_deref()).await?))
}

#[utoipa::path(
    tag = "trading",
    params(
        ("Authorization" = String, Header, description = "Bearer <session token>; development mode: X-Hob-User instead"),
        ("order_id" = String, Path, description = "The exchange's order id"),
    ),
    request_body = AmendOrderRequest,
    responses(
        (status = 200, description = "The amend is on its way to the market", body = AmendResponse),
        (status = 400, description = "Malformed or off the grid; or the new signed order does not fit the amend \
                                        (signature_required, invalid_amend, signed_field_mismatch, fee_cap_too_low, \
                                        order_expired, malformed_signed_order)", body = ErrorBody),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 403, description = "wrong_signer: signed by neither the user nor an agent it authorised", body = ErrorBody),
        (status = 404, description = "Unknown order", body = ErrorBody),
        (status = 409, description = "Nonce used, an amend or cancel already in flight", body = ErrorBody),
        (status = 422, description = "Insufficient balance, not amendable, no change", body = ErrorBody),
    ),
)]
#[patch("/orders/{order_id}")]
pub async fn amend(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
    body: web::Json<AmendOrderRequest>,
) -> Json<AmendResponse> {
    Ok(web::Json(trading::amend(&state, user.0, &path, &body).await?))
}

#[utoipa::path(
    tag = "trading",
    params(("Authorization" = String, Header, description = "Bearer <session token>; development mode: X-Hob-User instead")),
    request_body = BatchRequest,
    responses(
        (status = 200, description = "One result per item; each succeeded or failed on its own", body = BatchResponse),
        (status = 400, description = "Empty or too large", body = ErrorBody),
    ),
)]
#[post("/orders/batch")]
pub async fn batch(state: web::Data<AppState>, user: AuthUser, body: web::Json<BatchRequest>) -> Json<BatchResponse> {
    Ok(web::Json(trading::batch(&state, user.0, body.into_inner().ops).await?))
}

#[utoipa::path(
    tag = "development",
    request_body = FaucetRequest,
    responses((status = 200, description = "Credited", body = FaucetResponse), (status = 400, body = ErrorBody)),
)]
#[post("/dev/faucet")]
pub async fn faucet(state: web::Data<AppState>, body: web::Json<FaucetRequest>) -> Json<FaucetResponse> {
    Ok(web::Json(trading::faucet(&state, &body).await?))
}
