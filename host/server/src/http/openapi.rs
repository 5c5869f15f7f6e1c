//! `GET /openapi.json`: the OpenAPI 3.1 document of this HTTP API. It is made
//! by utoipa from the handlers' own request and response types and their
//! `#[utoipa::path]` operations, collected by the router itself
//! (`http::routes`, utoipa-axum), so a route cannot be served undocumented.
//! The error responses come from `error::ERROR_TYPES`; the configured text
//! limit is filled in when the router is built.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi, RefOr};
use utoipa::Modify;

use super::auth::Access;
use super::error::{ErrorBody, ErrorDetail, KeyErrors, StageErrorDetail};
use super::reply::Exchange;
use super::AppState;
use crate::tts::Timings;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "voxpipe",
        description = "Text-to-speech: a pipeline of sandboxed Wasm stages around a native neural \
            voice. `POST /v1/tts` is voxpipe's own API, `POST /v1/audio/speech` is \
            OpenAI-compatible. Every error is `{\"error\": {\"type\", \"message\", \"trace_id\"}}` \
            with the status of its `type`. Prose reference: docs/api.md.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    components(schemas(
        ErrorBody,
        ErrorDetail,
        StageErrorDetail,
        super::tts::TimestampedAudio,
        super::tts::WordTimingSchema
    )),
    modifiers(&Keys),
    tags(
        (name = "synthesis", description = "Text in, audio out."),
        (name = "catalog", description = "What the server can speak with."),
        (name = "operations", description = "Health, readiness, metrics, the web page and this document."),
    )
)]
struct ApiDoc;

/// The bearer keys: required only where the server is configured with keys.
struct Keys;

impl Modify for Keys {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(description))
                    .build(),
            )
        };
        components.add_security_scheme(
            "api_key",
            bearer("An api key or an admin key; needed only when the server has api keys."),
        );
        components.add_security_scheme(
            "admin_key",
            bearer("An admin key; needed only when the server has admin keys."),
        );
    }
}

/// The document as served, made once when the router is built.
#[derive(Clone)]
pub(super) struct Document(pub Bytes);

/// The base document (info, shared schemas, security schemes) the router's
/// operations are added to.
pub(super) fn base() -> OpenApi {
    <ApiDoc as utoipa::OpenApi>::openapi()
}

/// Fills in what the derive cannot know: this server's `max_text_chars`, as
/// `maxLength` of the text fields.
pub(super) fn finish(doc: &mut OpenApi, max_text_chars: usize) {
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    for (schema, field) in [("TtsRequest", "text"), ("SpeechRequest", "input")] {
        if let Some(RefOr::T(Schema::Object(body))) = components.schemas.get_mut(schema) {
            if let Some(RefOr::T(Schema::Object(text))) = body.properties.get_mut(field) {
                text.max_length = Some(max_text_chars);
            }
        }
    }
}

/// `GET /openapi.json`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "operations",
    summary = "This document: the OpenAPI 3.1 description of the HTTP API",
    description = "Generate clients from it (e.g. `openapi-python-client generate --url \
        http://127.0.0.1:8080/openapi.json`, `npx openapi-typescript …`). The text fields' \
        `maxLength` is this server's `max_text_chars`.",
    responses(
        (status = 200, description = "The OpenAPI document.", content_type = "application/json", body = Object),
        KeyErrors,
    ),
    security((), ("api_key" = []))
)]
pub async fn document(
    State(state): State<AppState>,
    Extension(doc): Extension<Document>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = state.auth.check(&headers, Access::Api) {
        return Exchange::new(&headers).error(e, &Timings::default());
    }
    ([(header::CONTENT_TYPE, "application/json")], doc.0).into_response()
}

#[cfg(test)]
mod tests {
    use crate::tts::{LANGUAGE_MAX_CHARS, SAMPLE_RATE_RANGE, SPEED_RANGE};

    /// The derive's literal limits are the ones `tts::request` checks.
    #[test]
    fn published_limits_are_the_checked_ones() {
        let doc = serde_json::to_value(super::super::openapi_document(77)).unwrap();
        let schemas = &doc["components"]["schemas"];
        for (schema, text) in [("TtsRequest", "text"), ("SpeechRequest", "input")] {
            let p = &schemas[schema]["properties"];
            assert_eq!(p[text]["maxLength"], 77, "{schema}");
            assert_eq!(p[text]["minLength"], 1, "{schema}");
            assert_eq!(p["speed"]["minimum"].as_f64(), Some(SPEED_RANGE.0.into()));
            assert_eq!(p["speed"]["maximum"].as_f64(), Some(SPEED_RANGE.1.into()));
        }
        let p = &schemas["TtsRequest"]["properties"];
        assert_eq!(p["sample_rate"]["minimum"], SAMPLE_RATE_RANGE.0);
        assert_eq!(p["sample_rate"]["maximum"], SAMPLE_RATE_RANGE.1);
        let pattern = format!("^[A-Za-z0-9_-]{{1,{LANGUAGE_MAX_CHARS}}}$");
        assert_eq!(p["language"]["pattern"], pattern.as_str());
    }
}
