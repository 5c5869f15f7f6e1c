//! `GET /`: a small page to try the server (text, pipeline, voice, instruct;
//! play and download) that shows the request's trace id and a per-stage timing
//! bar — what support asks a user to copy. One file, no external resources.

use axum::http::header;
use axum::response::IntoResponse;

const PAGE: &str = include_str!("page.html");

/// `GET /`.
#[utoipa::path(
    get,
    path = "/",
    operation_id = "page",
    tag = "operations",
    summary = "The web page: speak a text, see its trace id and stage timings",
    responses((status = 200, description = "The page.", content_type = "text/html; charset=utf-8", body = String))
)]
pub async fn index() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE,
    )
}
