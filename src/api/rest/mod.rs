//! The HTTP routes: the public market data and the private, trading and development routes
//! under `/api/v1`, the operator API under `/operator`, the system routes at the root, and the
//! operator console's static page under `/console`.
//! Routes are mounted through `utoipa_actix_web`, so the OpenAPI document is generated from
//! exactly what is mounted (`tests/api_openapi.rs` checks both against each other and against
//! the running server).

pub mod account;
pub mod auth;
pub mod chain;
pub mod operator;
pub mod orders;
pub mod public;
pub mod settlement;
pub mod system;
pub mod withdrawals;

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use utoipa_actix_web::scope;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::api::auth::AuthMode;
use crate::api::error::ApiError;

/// Which optional route groups are mounted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mounts {
    pub auth: AuthMode,
    pub dev_faucet: bool,
}

/// Mounts every route of this configuration.
pub fn routes(cfg: &mut ServiceConfig, mounts: Mounts) {
    cfg.service(system::healthz)
        .service(system::readyz)
        .service(system::metrics)
        .service(system::openapi)
        .service(crate::api::ws::connect)
        .service(crate::api::console::page)
        .service(crate::api::console::static_asset);
    let mut api = scope("/api/v1")
        .service(public::markets)
        .service(public::market)
        .service(public::book)
        .service(public::trades)
        .service(public::candles)
        .service(public::ticker)
        .service(auth::eip712)
        .service(chain::chain_info);
    if mounts.auth.login_routes() {
        api = api.service(auth::challenge).service(auth::login);
    }
    // Fixed paths before `/orders/{order_id}`, which would otherwise take them.
    api = api
        .service(auth::authorize_agent)
        .service(account::balances)
        .service(account::open_orders)
        .service(account::order_history)
        .service(account::order_by_client_id)
        .service(account::fills)
        .service(account::order)
        .service(orders::place)
        .service(orders::batch)
        .service(orders::cancel_all)
        .service(orders::cancel)
        .service(orders::amend)
        .service(withdrawals::request)
        .service(withdrawals::history);
    if mounts.dev_faucet {
        api = api.service(orders::faucet);
    }
    cfg.service(api);
    cfg.service(
        scope("/operator")
            .service(operator::actors)
            .service(operator::inspect_market)
            .service(operator::inspect_user)
            .service(operator::halt)
            .service(operator::resume)
            .service(operator::rebuild_views)
            .service(operator::dead_letters)
            .service(settlement::pipeline)
            .service(chain::chain_status)
            .service(chain::pause)
            .service(chain::unpause),
    );
}

/// Request bodies: size-limited JSON with our error shape.
pub fn json_config(max_body_bytes: usize) -> web::JsonConfig {
    web::JsonConfig::default().limit(max_body_bytes).error_handler(|e, _| json_error(e).into())
}

fn json_error(e: JsonPayloadError) -> ApiError {
    match e {
        JsonPayloadError::Overflow { limit } | JsonPayloadError::OverflowKnownLength { limit, .. } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", format!("the body exceeds {limit} bytes"))
        }
        JsonPayloadError::ContentType => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as application/json",
        ),
        JsonPayloadError::Deserialize(e) => ApiError::bad_request("malformed", format!("invalid JSON body: {e}")),
        other => ApiError::bad_request("malformed", other.to_string()),
    }
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default()
        .error_handler(|e: QueryPayloadError, _| ApiError::bad_request("invalid_query", e.to_string()).into())
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default()
        .error_handler(|e: PathError, _| ApiError::bad_request("invalid_path", e.to_string()).into())
}

/// Anything not mounted.
pub async fn no_such_route(req: HttpRequest) -> HttpResponse {
    let e = ApiError::not_found("no_such_route", format!("no route {} {}", req.method(), req.path()));
    actix_web::ResponseError::error_response(&e)
}
