//! Order entry, shared by REST and the WebSocket: a wire request is checked and turned into
//! integer terms at the edge (off-grid -> refused, never rounded), then handed to the engine
//! for the user the caller authenticated as. Nothing here decides anything the domain
//! decides; it only refuses early what can never succeed, with a clear code.

use std::time::Instant;

use serde::Deserialize;
use serde_json::Value;

use crate::api::catalog::Catalog;
use crate::api::error::ApiError;
use crate::api::sessions::now_ms;
use crate::api::signing::{verify_amend, verify_order, SigningContext};
use crate::api::state::AppState;
use crate::api::wire::{
    AmendOrderRequest, AmendResponse, BatchItemResult, BatchResponse, CancelAllResponse, CancelResponse, FaucetRequest,
    FaucetResponse, PlaceOrderRequest, PlaceOrderResponse, WireOrderType, WireSide, WireStp, WireTif,
};
use crate::domain::{
    AmendAuth, ClientOrderId, OrderId, OrderType, Side, StpMode, TimeInForce, TimestampMs, UserId, MAX_OPEN_ORDERS,
};
use crate::engine::{OrderRef, PlaceOrder};

/// Which order a cancel names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelTarget {
    pub order_id: Option<String>,
    pub client_order_id: Option<String>,
}

/// One item of a batch.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum BatchOp {
    Place(PlaceOrderRequest),
    Cancel(CancelTarget),
}

/// Turns a wire order into the engine's terms, refusing anything malformed or off the grid.
pub fn order_terms(state: &AppState, req: &PlaceOrderRequest) -> Result<PlaceOrder, ApiError> {
    order_terms_in(&state.catalog, req)
}

/// `order_terms` against a catalog alone (what the fuzz targets drive).
pub fn order_terms_in(catalog: &Catalog, req: &PlaceOrderRequest) -> Result<PlaceOrder, ApiError> {
    let market = catalog.market(&req.market)?;
    let qty = market.qty("qty", &req.qty)?;
    let order_type = match req.order_type {
        WireOrderType::Limit => {
            if req.worst_price.is_some() {
                return Err(ApiError::bad_request("invalid_order", "worst_price is for market orders; use price"));
            }
            let price = req
                .price
                .as_deref()
                .ok_or_else(|| ApiError::bad_request("missing_price", "a limit order needs a price"))?;
            OrderType::Limit { price: market.price("price", price)? }
        }
        WireOrderType::Market => {
            if req.price.is_some() {
                return Err(ApiError::bad_request("invalid_order", "a market order has no price; use worst_price"));
            }
            let worst = req.worst_price.as_deref().map(|p| market.price("worst_price", p)).transpose()?;
            OrderType::Market { worst_price: worst }
        }
    };
    let tif = match (req.tif, req.expires_at) {
        (Some(WireTif::Gtd), Some(at)) => TimeInForce::Gtd(TimestampMs(at)),
        (Some(WireTif::Gtd), None) => {
            return Err(ApiError::bad_request("missing_expires_at", "a gtd order needs expires_at"))
        }
        (_, Some(_)) => return Err(ApiError::bad_request("invalid_order", "expires_at is for gtd orders only")),
        (Some(WireTif::Gtc), None) => TimeInForce::Gtc,
        (Some(WireTif::Ioc), None) => TimeInForce::Ioc,
        (Some(WireTif::Fok), None) => TimeInForce::Fok,
        (None, None) => match req.order_type {
            WireOrderType::Limit => TimeInForce::Gtc,
            WireOrderType::Market => TimeInForce::Ioc,
        },
    };
    let client_order_id = req
        .client_order_id
        .as_deref()
        .map(ClientOrderId::new)
        .transpose()
        .map_err(|e| ApiError::bad_request("invalid_client_order_id", e.to_string()))?;
    Ok(PlaceOrder {
        market: market.id(),
        side: match req.side {
            WireSide::Buy => Side::Buy,
            WireSide::Sell => Side::Sell,
        },
        order_type,
        qty,
        tif,
        post_only: req.post_only,
        stp: match req.stp {
            WireStp::ExpireMaker => StpMode::ExpireMaker,
            WireStp::ExpireTaker => StpMode::ExpireTaker,
            WireStp::ExpireBoth => StpMode::ExpireBoth,
        },
        client_order_id,
        nonce: req.nonce,
        // Set by `place` once the signed order is verified (development mode: may stay unset).
        auth: None,
    })
}

/// Places an order for `user`; counts it by outcome.
pub async fn place(state: &AppState, user: UserId, req: PlaceOrderRequest) -> Result<PlaceOrderResponse, ApiError> {
    let started = Instant::now();
    let result = place_unmetered(state, user, &req).await;
    match &result {
        Ok(_) => {
            state.metrics.order("accepted", "");
            state.metrics.order_ack_seconds.observe(started.elapsed().as_secs_f64());
        }
        Err(e) if e.status.is_client_error() => state.metrics.order("rejected", e.code),
        Err(e) => state.metrics.order("error", e.code),
    }
    result
}

async fn place_unmetered(
    state: &AppState,
    user: UserId,
    req: &PlaceOrderRequest,
) -> Result<PlaceOrderResponse, ApiError> {
    let mut terms = order_terms(state, req)?;
    match &req.signed_order {
        Some(signed) => {
            let market = state.catalog.market(&req.market)?;
            let ctx = SigningContext { domain: &state.domain, sessions: &state.sessions, now_s: now_ms() / 1_000 };
            terms.auth = Some(verify_order(&ctx, user, market, &terms, signed)?);
        }
        None if state.auth.orders_signed() => {
            return Err(ApiError::bad_request(
                "signature_required",
                "an order carries signed_order: its EIP-712 Order and signature (GET /api/v1/eip712)",
            ))
        }
        None => {}
    }
    // The market decides halts; refusing here too (as far as the feed has seen) saves a
    // lock and release and gives the caller a direct answer.
    if state.markets.get(&terms.market).is_some_and(|feed| feed.halted()) {
        return Err(ApiError::conflict("market_halted", format!("market {} is halted", terms.market)));
    }
    // The engine enforces its own cap; a lower configured cap costs one read of the user.
    if state.limits.max_open_orders < MAX_OPEN_ORDERS {
        let open = state.engine.user(user).await?.state.open_orders().count();
        if open >= state.limits.max_open_orders {
            return Err(ApiError::unprocessable(
                "too_many_open_orders",
                format!("at most {} open orders", state.limits.max_open_orders),
            ));
        }
    }
    let client_order_id = req.client_order_id.clone();
    let id = state.engine.place(user, terms).await?;
    Ok(PlaceOrderResponse { order_id: id.0.to_string(), client_order_id, status: "accepted".to_owned() })
}

fn order_ref(target: &CancelTarget) -> Result<OrderRef, ApiError> {
    match (&target.order_id, &target.client_order_id) {
        (Some(id), None) => parse_order_id(id).map(OrderRef::Id),
        (None, Some(client)) => ClientOrderId::new(client)
            .map(OrderRef::Client)
            .map_err(|e| ApiError::bad_request("invalid_client_order_id", e.to_string())),
        _ => Err(ApiError::bad_request(
            "invalid_order_ref",
            "name the order by exactly one of order_id, client_order_id",
        )),
    }
}

pub fn parse_order_id(text: &str) -> Result<OrderId, ApiError> {
    text.parse::<u64>()
        .map(OrderId)
        .map_err(|_| ApiError::bad_request("invalid_order_id", format!("{:?} is not an order id", truncate(text))))
}

fn truncate(text: &str) -> String {
    text.chars().take(40).collect()
}

pub async fn cancel(state: &AppState, user: UserId, target: &CancelTarget) -> Result<CancelResponse, ApiError> {
    let order = order_ref(target)?;
    let open = state
        .engine
        .open_order(user, order)
        .await?
        .ok_or_else(|| ApiError::not_found("unknown_order", "no such open order"))?;
    state.engine.cancel(user, open.market, open.order.id).await?;
    Ok(CancelResponse { order_id: open.order.id.0.to_string(), status: "cancel_requested".to_owned() })
}

pub async fn cancel_all(state: &AppState, user: UserId, market: Option<&str>) -> Result<CancelAllResponse, ApiError> {
    let market = market.map(|m| state.catalog.market(m).map(|e| e.id())).transpose()?;
    let sent = state.engine.cancel_all(user, market).await?;
    Ok(CancelAllResponse { cancel_requested: sent.iter().map(|id| id.0.to_string()).collect() })
}

pub async fn amend(
    state: &AppState,
    user: UserId,
    order_id: &str,
    req: &AmendOrderRequest,
) -> Result<AmendResponse, ApiError> {
    let id = parse_order_id(order_id)?;
    let open = state
        .engine
        .open_order(user, OrderRef::Id(id))
        .await?
        .ok_or_else(|| ApiError::not_found("unknown_order", "no such open order"))?;
    let market = state.catalog.market(open.market.as_str())?;
    let price = market.price("price", &req.price)?;
    let qty = market.qty("qty", &req.qty)?;
    match (&req.signed_order, req.nonce) {
        (Some(signed), Some(nonce)) => {
            let ctx = SigningContext { domain: &state.domain, sessions: &state.sessions, now_s: now_ms() / 1_000 };
            let auth = verify_amend(&ctx, market, &open.order, (price, qty, nonce), signed)?;
            let signed = AmendAuth { nonce, auth };
            state.engine.amend_signed(user, open.market, id, price, qty, signed).await?;
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(ApiError::bad_request(
                "invalid_amend",
                "a signed amend carries both nonce and signed_order; an unsigned one neither",
            ))
        }
        // Trades after the amend need a signature for the new terms: the old one names the
        // old price and quantity, which the contract would refuse or overfill.
        (None, None) if state.auth.orders_signed() => return Err(ApiError::bad_request(
            "signature_required",
            "an amend carries nonce and signed_order: a new EIP-712 Order for the new terms (README.md, \"Signing\")",
        )),
        (None, None) => {
            state.engine.amend(user, open.market, id, price, qty).await?;
        }
    }
    Ok(AmendResponse { order_id: id.0.to_string(), status: "amend_requested".to_owned() })
}

/// Carries out each item in order; each succeeds or fails on its own.
pub async fn batch(state: &AppState, user: UserId, ops: Vec<Value>) -> Result<BatchResponse, ApiError> {
    if ops.is_empty() {
        return Err(ApiError::bad_request("empty_batch", "a batch needs at least one item"));
    }
    if ops.len() > state.limits.max_batch {
        return Err(ApiError::bad_request(
            "batch_too_large",
            format!("{} items, at most {}", ops.len(), state.limits.max_batch),
        ));
    }
    let mut results = Vec::with_capacity(ops.len());
    for op in ops {
        let outcome = match serde_json::from_value::<BatchOp>(op) {
            Err(e) => Err(ApiError::bad_request("malformed", e.to_string())),
            Ok(BatchOp::Place(req)) => place(state, user, req).await.and_then(to_value),
            Ok(BatchOp::Cancel(target)) => cancel(state, user, &target).await.and_then(to_value),
        };
        results.push(match outcome {
            Ok(result) => BatchItemResult { result: Some(result), error: None },
            Err(e) => BatchItemResult { result: None, error: Some(e.body()) },
        });
    }
    Ok(BatchResponse { results })
}

fn to_value<T: serde::Serialize>(v: T) -> Result<Value, ApiError> {
    serde_json::to_value(v).map_err(|e| ApiError::internal(e.to_string()))
}

/// Development faucet: test funds for any address. With a chain it mints the test token to
/// the wallet on-chain (the user then deposits it); without one, or asked for `ledger`, it
/// credits the off-chain balance.
pub async fn faucet(state: &AppState, req: &FaucetRequest) -> Result<FaucetResponse, ApiError> {
    let user = UserId::from_hex(req.user.trim()).map_err(|e| ApiError::bad_request("invalid_user", e.to_string()))?;
    let (asset, _) = state.catalog.asset(&req.asset)?;
    let amount = state.catalog.parse_amount("amount", asset, &req.amount)?;
    if amount.is_zero() {
        return Err(ApiError::bad_request("zero_amount", "amount must be positive"));
    }
    let mint_on_chain = match (req.target.as_deref(), &state.chain) {
        (None | Some("wallet"), Some(_)) => true,
        (None | Some("ledger"), None) | (Some("ledger"), Some(_)) => false,
        (Some("wallet"), None) => {
            return Err(ApiError::conflict("no_chain", "no chain is configured: the faucet credits the ledger only"))
        }
        (Some(other), _) => {
            return Err(ApiError::bad_request("invalid_target", format!("target {other:?} is not wallet or ledger")))
        }
    };
    let mut response = FaucetResponse {
        user: user.to_string(),
        asset: asset.to_string(),
        amount: state.catalog.amount_str(asset, amount),
        target: if mint_on_chain { "wallet" } else { "ledger" }.to_owned(),
        tx: None,
        token: None,
    };
    match state.chain.as_ref().filter(|_| mint_on_chain) {
        Some(chain) => {
            let to = alloy::primitives::Address::from(user.0);
            let tx = chain
                .link
                .mint(asset, to, amount.0)
                .await
                .map_err(|e| ApiError::unavailable("chain_unavailable", format!("minting on-chain: {e}")))?;
            response.tx = Some(tx.to_string());
            response.token = chain.link.tokens.get(&asset).map(|t| t.to_checksum(None));
        }
        None => {
            state.engine.deposit(user, asset, amount).await?;
        }
    }
    Ok(response)
}
