//! One id per HTTP request, for following it through the logs: taken from the caller's
//! `x-request-id` (a proxy or client that already has one), else from a W3C `traceparent`'s
//! trace id, else a fresh UUIDv7. Every log line written while the request is handled carries
//! it (a `request` span with `request_id`, `method`, `path`), one line records its outcome, and
//! the response echoes it in `x-request-id` so a client can quote it in a report.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument;

pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Longest caller-given id kept; a longer one is replaced, so logs stay bounded.
const MAX_ID_LEN: usize = 128;

/// The caller's id if it is short printable ASCII (safe in a header and a log line).
fn usable(id: &str) -> Option<String> {
    let ok = !id.is_empty() && id.len() <= MAX_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic());
    ok.then(|| id.to_owned())
}

/// The trace id of a `traceparent` header (`00-<32 hex>-<16 hex>-<2 hex>`), unless all zeros.
fn trace_id(traceparent: &str) -> Option<String> {
    let mut parts = traceparent.split('-');
    let (_version, trace) = (parts.next()?, parts.next()?);
    let ok = trace.len() == 32 && trace.bytes().all(|b| b.is_ascii_hexdigit()) && trace.bytes().any(|b| b != b'0');
    ok.then(|| trace.to_ascii_lowercase())
}

/// The id of a request with these header values.
pub fn request_id(given: Option<&str>, traceparent: Option<&str>) -> String {
    given
        .and_then(usable)
        .or_else(|| traceparent.and_then(trace_id))
        .unwrap_or_else(|| uuid::Uuid::now_v7().simple().to_string())
}

/// The middleware (outermost, so rate-limited and failed requests get an id too).
pub async fn trace_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let id = request_id(header(REQUEST_ID_HEADER), header("traceparent"));
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.path());
    // Probes and scrapes arrive every few seconds; their lines would drown the rest.
    let routine = matches!(req.path(), "/healthz" | "/readyz" | "/metrics");
    let started = Instant::now();
    let result = next.call(req).instrument(span.clone()).await;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1_000.0;
    let _entered = span.enter();
    match result {
        Ok(mut response) => {
            let status = response.status().as_u16();
            if routine && status < 400 {
                tracing::debug!(status, elapsed_ms, "request done");
            } else {
                tracing::info!(status, elapsed_ms, "request done");
            }
            // `id` is printable ASCII by construction, so it is always a valid header value.
            if let Ok(value) = HeaderValue::from_str(&id) {
                response.headers_mut().insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
            }
            Ok(response)
        }
        Err(e) => {
            tracing::warn!(error = %e, elapsed_ms, "request failed");
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_callers_id_wins_then_the_trace_id_then_a_fresh_one() {
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(request_id(Some("abc-123"), Some(traceparent)), "abc-123");
        assert_eq!(request_id(None, Some(traceparent)), "4bf92f3577b34da6a3ce929d0e0e4736");
        let fresh = request_id(None, None);
        assert_eq!(fresh.len(), 32);
        assert_ne!(fresh, request_id(None, None));
    }

    #[test]
    fn unusable_ids_are_replaced_not_echoed() {
        let long = "x".repeat(MAX_ID_LEN + 1);
        for bad in ["", "has space", "tab\there", long.as_str()] {
            let id = request_id(Some(bad), None);
            assert_ne!(id, bad);
            assert_eq!(id.len(), 32);
        }
        let zero_trace = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
        assert_eq!(request_id(None, Some(zero_trace)).len(), 32);
        assert_ne!(request_id(None, Some(zero_trace)), "00000000000000000000000000000000");
    }
}
