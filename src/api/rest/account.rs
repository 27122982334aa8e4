//! Private reads: the caller's balances, orders and fills. They come from the caller's user
//! stream, followed from the last projected views to the stream's head (`api::feed::user`),
//! so they are as fresh as the last commit and never wait in the user actor's mailbox.

use actix_web::{get, web};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::api::auth::AuthUser;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::state::AppState;
use crate::api::trading::parse_order_id;
use crate::api::wire::{BalanceInfo, FillInfo, OrderInfo};

type Json<T> = Result<web::Json<T>, ApiError>;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct MarketFilter {
    /// Only this market.
    pub market: Option<String>,
    /// How many (default 100, at most 1000); lists only.
    pub limit: Option<usize>,
}

impl MarketFilter {
    fn market<'a>(&'a self, state: &AppState) -> Result<Option<&'a str>, ApiError> {
        if let Some(m) = &self.market {
            state.catalog.market(m)?;
        }
        Ok(self.market.as_deref())
    }

    fn limit(&self) -> usize {
        self.limit.unwrap_or(100).clamp(1, 1_000)
    }
}

#[utoipa::path(
    tag = "account",
    params(("Authorization" = String, Header, description = "Bearer <session token>; development mode: X-Hob-User instead")),
    responses((status = 200, body = Vec<BalanceInfo>), (status = 401, body = ErrorBody)),
)]
#[get("/balances")]
pub async fn balances(state: web::Data<AppState>, user: AuthUser) -> Json<Vec<BalanceInfo>> {
    let feed = state.users.load_once(user.0).await?;
    Ok(web::Json(feed.balances()))
}

#[utoipa::path(
    tag = "account",
    params(("Authorization" = String, Header, description = "Bearer <session token>; development mode: X-Hob-User instead"), MarketFilter),
    responses((status = 200, description = "Open orders by id", body = Vec<OrderInfo>), (status = 401, body = ErrorBody)),
)]
#[get("/orders")]
pub async fn open_orders(
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<MarketFilter>,
) -> Json<Vec<OrderInfo>> {
    let market = q.market(&state)?;
    let feed = state.users.load_once(user.0).await?;
    Ok(web::Json(feed.open_orders(market)))
}

#[utoipa::path(
    tag = "account",
    params(("Authorization" = String, Header, description = "Bearer <session token>; development mode: X-Hob-User instead"), MarketFilter),
    responses((status = 200, description = "Closed orders, most recent first", body = Vec<OrderInfo>), (status = 401, body = ErrorBody)),
)]
#[get("/orders/history")]
pub async fn order_history(
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<MarketFilter>,
) -> Json<Vec<OrderInfo>> {
    let market = q.market(&state)?;
    let feed = state.users.load_once(user.0).await?;
    Ok(web::Json(feed.history(market, q.limit())))
}

#[utoipa::path(
    tag = "account",
    params(("Authorization" = String, Header, description = "Bearer <session token>; development mode: X-Hob-User instead"), MarketFilter),
    responses((status = 200, description = "Fills, most recent first", body = Vec<FillInfo>), (status = 401, body = ErrorBody)),
)]
#[get("/fills")]
pub async fn fills(state: web::Data<AppState>, user: AuthUser, q: web::Query<MarketFilter>) -> Json<Vec<FillInfo>> {
    let market = q.market(&state)?;
    let feed = state.users.load_once(user.0).await?;
    Ok(web::Json(feed.fills(market, q.limit())))
}

#[utoipa::path(
    tag = "account",
    params(
        ("Authorization" = String, Header, description = "Bearer <session token>; development mode: X-Hob-User instead"),
        ("client_order_id" = String, Path, description = "The client's id for the order"),
    ),
    responses((status = 200, body = OrderInfo), (status = 404, body = ErrorBody)),
)]
#[get("/orders/client/{client_order_id}")]
pub async fn order_by_client_id(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
) -> Json<OrderInfo> {
    let feed = state.users.load_once(user.0).await?;
    feed.order_by_client_id(&path)
        .map(web::Json)
        .ok_or_else(|| ApiError::not_found("unknown_order", "no order with this client order id"))
}

#[utoipa::path(
    tag = "account",
    params(
        ("Authorization" = String, Header, description = "Bearer <session token>; development mode: X-Hob-User instead"),
        ("order_id" = String, Path, description = "The exchange's order id"),
    ),
    responses((status = 200, body = OrderInfo), (status = 404, body = ErrorBody)),
)]
#[get("/orders/{order_id}")]
pub async fn order(state: web::Data<AppState>, user: AuthUser, path: web::Path<String>) -> Json<OrderInfo> {
    let id = parse_order_id(&path)?;
    let feed = state.users.load_once(user.0).await?;
    feed.order(id.0).map(web::Json).ok_or_else(|| ApiError::not_found("unknown_order", "no such order"))
}
