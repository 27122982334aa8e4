//! The operator console: one static page (HTML, CSS, JavaScript) embedded in the binary and
//! served at `/console`, so an operator needs nothing but a browser; no build step, no CDN
//! (operators' networks may have no internet). The page is a client of the operator API: it
//! asks for the operator token and polls `/operator/*` about once a second. Serving it needs
//! no token because it holds no data; every figure it shows comes through the token.
//!
//! The page builds the DOM with `textContent` only, never `innerHTML`, so nothing the server
//! sends (market ids, alert messages) is ever parsed as markup; the Content-Security-Policy
//! below forbids inline scripts and other origins, which backs that up.

use actix_web::http::header;
use actix_web::{get, web, HttpResponse};

use crate::api::error::{ApiError, ErrorBody};

const INDEX_HTML: &str = include_str!("index.html");
const CONSOLE_CSS: &str = include_str!("console.css");
const CONSOLE_JS: &str = include_str!("console.js");

/// Scripts and styles from this origin only, fetches to this origin only, no frames.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; \
                   base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        // The assets change with the binary; a stale cached script would talk to a newer API.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .body(body)
}

#[utoipa::path(
    tag = "console",
    responses((status = 200, description = "The operator console (HTML); it asks for the operator token", content_type = "text/html")),
)]
#[get("/console")]
pub async fn page() -> HttpResponse {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

#[utoipa::path(
    tag = "console",
    params(("asset" = String, Path, description = "`console.css` or `console.js`")),
    responses(
        (status = 200, description = "The console's stylesheet or script"),
        (status = 404, body = ErrorBody),
    ),
)]
#[get("/console/{asset}")]
pub async fn static_asset(path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    match path.as_str() {
        "console.css" => Ok(asset("text/css; charset=utf-8", CONSOLE_CSS)),
        "console.js" => Ok(asset("text/javascript; charset=utf-8", CONSOLE_JS)),
        other => Err(ApiError::not_found("no_such_asset", format!("the console has no asset {other:?}"))),
    }
}
