//! `GET /`: a small page to try the server (text, pipeline, voice, instruct;
//! play and download) that shows the request's trace id and a per-stage timing
//! bar — what support asks a user to copy. One file, no external resources.

use axum::http::header;
use axum::response::IntoResponse;

const PAGE: &str = include_str!("page.html");

pub async fn index() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE,
    )
}
