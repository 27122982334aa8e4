//! Liveness, readiness, metrics and the OpenAPI document.

use actix_web::{get, web, HttpResponse};

use crate::actors::singleton::Placement;
use crate::api::error::ApiError;
use crate::api::metrics::gauge_value;
use crate::api::readiness::{Readiness, CHECK_DEADLINE};
use crate::api::state::AppState;
use crate::api::wire::{Health, HealthCheck};
use crate::events::EventStore;
use crate::queue::DESTINATIONS;

/// The OpenAPI document, generated from the mounted routes at start.
pub struct ApiDocument(pub String);

#[utoipa::path(tag = "system", responses((status = 200, description = "The process is up", body = Health)))]
#[get("/healthz")]
pub async fn healthz() -> web::Json<Health> {
    web::Json(Health { status: "ok".to_owned(), checks: Vec::new() })
}

#[utoipa::path(
    tag = "system",
    responses(
        (status = 200, description = "Every dependency answers (stores, queue; with a chain, the node answers and holds every market)", body = Health),
        (status = 503, description = "Something does not answer", body = Health),
    ),
)]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>, readiness: web::Data<Readiness>) -> HttpResponse {
    let mut checks = readiness.run(CHECK_DEADLINE).await;
    if let Some(chain) = &state.chain {
        // Ready to settle: the node answers and holds every configured market.
        let check = |name: &str, result: Result<(), String>| HealthCheck {
            name: name.to_owned(),
            ok: result.is_ok(),
            detail: result.err(),
        };
        let late = format!("no answer within {CHECK_DEADLINE:?}");
        let probe = tokio::time::timeout(CHECK_DEADLINE, chain.link.probe()).await;
        checks.push(check("chain", probe.map_err(|_| late.clone()).and_then(|r| r.map(drop))));
        let missing = tokio::time::timeout(CHECK_DEADLINE, chain.unregistered()).await;
        let markets = missing.map_err(|_| late).and_then(|r| r).and_then(|missing| match missing.is_empty() {
            true => Ok(()),
            false => Err(format!("not registered on-chain yet: {}", missing.join(", "))),
        });
        checks.push(check("chain_markets", markets));
        // Among several nodes one runs the operators; a standby node is ready all the same
        // (it serves trading) and says where the operator runs instead.
        let operator = match chain.settlement.placement().await {
            Placement::Here if chain.settlement.running() => HealthCheck::ok("settlement_operator"),
            Placement::Here => check("settlement_operator", Err("stopped here; it restarts".to_owned())),
            Placement::Elsewhere { owner } => HealthCheck {
                name: "settlement_operator".to_owned(),
                ok: true,
                detail: Some(format!("hosted on {}", owner.as_deref().unwrap_or("another node"))),
            },
        };
        checks.push(operator);
    }
    if *state.stopping.borrow() {
        checks.push(HealthCheck { name: "server".to_owned(), ok: false, detail: Some("stopping".to_owned()) });
    }
    let ok = checks.iter().all(|c| c.ok);
    let body = Health { status: if ok { "ok" } else { "unavailable" }.to_owned(), checks };
    if ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

#[utoipa::path(
    tag = "system",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)),
)]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    refresh_gauges(&state).await;
    let text = state.metrics.render().map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(text))
}

/// Reads the engine's state into the scrape-time gauges.
async fn refresh_gauges(state: &AppState) {
    let m = &state.metrics;
    let mut sums = [0usize; 2];
    let mut maxes = [0usize; 2];
    for (stream, depth) in state.engine.registry().mailbox_depths() {
        let kind = usize::from(!stream.starts_with("market:"));
        sums[kind] += depth;
        maxes[kind] = maxes[kind].max(depth);
    }
    for (kind, name) in ["market", "user"].iter().enumerate() {
        m.mailbox_depth.with_label_values(&[name]).set(gauge_value(sums[kind]));
        m.mailbox_depth_max.with_label_values(&[name]).set(gauge_value(maxes[kind]));
    }
    // Counting the backlog is bounded: past 10,000 the figure is "at least".
    if let Ok(unpublished) = state.engine.store().fetch_unpublished(10_000).await {
        m.outbox_unpublished.set(gauge_value(unpublished.len()));
    }
    for destination in DESTINATIONS {
        if let Some(stats) = state.engine.queue().stats(destination) {
            m.queue_depth.with_label_values(&[destination]).set(gauge_value(stats.depth));
            m.dead_letters.with_label_values(&[destination]).set(gauge_value(stats.dead_letters));
        }
    }
    let c = &state.engine.registry().deps().counters;
    let load = |a: &std::sync::atomic::AtomicU64| gauge_value(a.load(std::sync::atomic::Ordering::Relaxed));
    for (name, value) in [
        ("appends", &c.appends),
        ("conflicts", &c.conflicts),
        ("deduplicated", &c.deduplicated),
        ("panics", &c.panics),
        ("restarts", &c.restarts),
        ("snapshots", &c.snapshots),
        ("snapshot_failures", &c.snapshot_failures),
        ("snapshots_refused", &c.snapshots_refused),
    ] {
        m.actor_events.with_label_values(&[name]).set(load(value));
    }
    let p = &state.projections;
    for (name, value) in [("passes", &p.passes), ("events_folded", &p.events_folded), ("errors", &p.errors)] {
        m.projection.with_label_values(&[name]).set(load(value));
    }
    m.private_feeds.set(gauge_value(state.users.live().await));
    for (id, feed) in &state.markets {
        m.market_halted.with_label_values(&[&id.to_string()]).set(i64::from(feed.halted()));
    }
    m.refresh_settlement().await;
}

#[utoipa::path(tag = "system", responses((status = 200, description = "This document", content_type = "application/json", body = Object)))]
#[get("/openapi.json")]
pub async fn openapi(doc: web::Data<ApiDocument>) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(doc.0.clone())
}
