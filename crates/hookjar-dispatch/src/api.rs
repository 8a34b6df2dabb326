//! The management API (S1–S6b, S13, X1, X2, X4): axum handlers, kept thin.
//!
//! Handlers read the request, call `hookjar-core` for every rule (validation,
//! masking, payloads, fan-out's `receives`) and the [`Store`] for persistence, and
//! answer in Django REST framework's shapes. Every error goes through [`ApiError`],
//! the one `IntoResponse` of the crate: internal errors are logged and answered with
//! an opaque 500, except a store that cannot take writes (a full disk, …): 503 with
//! `Retry-After` and the cause in words.
//!
//! The OpenAPI document of X4 lives in [`crate::openapi`]; the response types below
//! derive their schemas there.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hookjar_core::payload::json_kind;
use hookjar_core::request::decode_basic_auth;
use hookjar_core::webhook::webhook_id;
use hookjar_core::{
    DeactivateReason, DeliveryRequest, Event, EventType, NewWebhook, ValidationErrors, Webhook,
    WebhookPatch,
};
use serde::Serialize;
use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq;

use crate::clock::Clock;
use crate::deliver::Sender;
use crate::error::StoreError;
use crate::store::{DeliveryView, NewEvent, Redeliver, Store};

/// Request bodies larger than this are refused with 413 (S6).
pub const MAX_BODY: usize = 1024 * 1024;
/// `Retry-After` (seconds) of a 503 answered when the store cannot take writes.
pub const STORE_RETRY_AFTER: &str = "5";
/// S1: the default page size.
pub const DEFAULT_PAGE_SIZE: u64 = 20;
/// S1: the largest page size; larger requests are clamped to it.
pub const MAX_PAGE_SIZE: u64 = 100;

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

struct Shared {
    store: Store,
    clock: Clock,
    sender: Sender,
    wake: Arc<tokio::sync::Notify>,
    settings: ApiSettings,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// What the API is told at start, beside the parts it shares with the engine.
pub struct ApiSettings {
    pub api_key: String,
    /// Show stored secrets instead of masking them (`--reveal-secrets`).
    pub reveal_secrets: bool,
    /// `http://host:port` of the listener, used when a request has no Host header.
    pub base_url: String,
    /// How long a client may pause in the middle of a body (the header timeout).
    pub body_idle: std::time::Duration,
}

impl std::fmt::Debug for ApiSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiSettings")
            .field("api_key", &"[hidden]")
            .field("reveal_secrets", &self.reveal_secrets)
            .field("base_url", &self.base_url)
            .field("body_idle", &self.body_idle)
            .finish()
    }
}

impl AppState {
    /// The state of the API.
    pub fn new(
        store: Store,
        clock: Clock,
        sender: Sender,
        wake: Arc<tokio::sync::Notify>,
        settings: ApiSettings,
    ) -> Self {
        AppState {
            inner: Arc::new(Shared {
                store,
                clock,
                sender,
                wake,
                settings,
            }),
        }
    }
}

/// The router: `/openapi.json` without auth, everything under `/v1` behind S5's auth.
pub fn router(state: AppState) -> axum::Router {
    // Paths with a webhook id answer 404 for an id Skilljar could not have issued
    // (`^[0-9a-z]+$`), whatever the method, so their Allow header is never shown
    // for `sample-x`.
    let by_id = axum::Router::new()
        .route(
            "/v1/webhooks/{id}",
            get(retrieve_webhook)
                .put(update_webhook)
                .patch(update_webhook)
                .delete(delete_webhook),
        )
        .route("/v1/webhooks/{id}/ping", post(ping_webhook))
        .route("/v1/webhooks/{id}/deactivate", post(deactivate_webhook))
        .route("/v1/webhooks/{id}/deliveries", get(list_deliveries))
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(middleware::from_fn(require_webhook_id));
    // S6b: ten explicit sample paths, GET only.
    let samples = EventType::ALL
        .into_iter()
        .fold(axum::Router::new(), |r, t| {
            r.route(
                &format!("/v1/webhooks/sample-{}", t.kebab()),
                get(move |State(state): State<AppState>| async move { sample(&state, t.kebab()) }),
            )
        });
    let v1 = axum::Router::new()
        .route("/v1/ping", get(ping_api))
        .route("/v1/webhooks", get(list_webhooks).post(create_webhook))
        .merge(samples)
        .merge(by_id)
        .route("/v1/deliveries/{id}/redeliver", post(redeliver))
        .route("/v1/events", post(emit_event))
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            require_api_key,
        ))
        .layer(middleware::from_fn(refuse_cross_origin));
    axum::Router::new()
        .route("/openapi.json", get(openapi_json))
        .method_not_allowed_fallback(method_not_allowed)
        .merge(v1)
        .fallback(not_found)
        .with_state(state)
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Every error the API answers, in DRF's shapes.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400, keyed by field (S6).
    #[error("invalid input: {0}")]
    Validation(ValidationErrors),
    /// 401 with `WWW-Authenticate: Basic` (S5).
    #[error("unauthenticated: {0}")]
    Unauthorized(String),
    /// 404 `{"detail": "Not found."}`.
    #[error("not found")]
    NotFound,
    /// 404 `{"detail": "Invalid page."}` (S1, DRF's page error).
    #[error("invalid page")]
    InvalidPage,
    /// 405 (S6).
    #[error("method {0} not allowed")]
    MethodNotAllowed(Method),
    /// 409: the request conflicts with the resource's state.
    #[error("conflict: {0}")]
    Conflict(String),
    /// 413 over [`MAX_BODY`] (S6).
    #[error("request body too large")]
    TooLarge,
    /// The client stopped in the middle of the body.
    #[error("{0}")]
    BodyStalled(hookjar_net::BodyError),
    /// The client went away in the middle of the body (nobody reads the answer).
    #[error("{0}")]
    BodyFailed(hookjar_net::BodyError),
    /// 415: a body in a format the API does not read.
    #[error("unsupported media type {0:?}")]
    UnsupportedMediaType(String),
    /// 415: an endpoint that takes JSON only got something else (X1).
    #[error("unsupported media type {0:?} (JSON only)")]
    JsonOnly(String),
    /// 500; logged, never shown.
    #[error(transparent)]
    Internal(#[from] StoreError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let detail = |status: StatusCode, msg: String| {
            (status, Json(json!({ "detail": msg }))).into_response()
        };
        match self {
            ApiError::Validation(errors) => (StatusCode::BAD_REQUEST, Json(errors)).into_response(),
            ApiError::Unauthorized(msg) => {
                let mut r = detail(StatusCode::UNAUTHORIZED, msg);
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"api\""),
                );
                r
            }
            ApiError::NotFound => detail(StatusCode::NOT_FOUND, "Not found.".into()),
            ApiError::InvalidPage => detail(StatusCode::NOT_FOUND, "Invalid page.".into()),
            ApiError::MethodNotAllowed(m) => detail(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("Method \"{m}\" not allowed."),
            ),
            ApiError::Conflict(msg) => detail(StatusCode::CONFLICT, msg),
            ApiError::TooLarge => detail(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("Request body is larger than {} bytes (1 MiB).", MAX_BODY),
            ),
            ApiError::BodyStalled(e) => {
                let mut r = detail(
                    StatusCode::REQUEST_TIMEOUT,
                    format!("{e}; send the whole body without pausing, then retry."),
                );
                r.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                r
            }
            ApiError::BodyFailed(e) => detail(StatusCode::BAD_REQUEST, e.to_string()),
            ApiError::JsonOnly(ct) => detail(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "Unsupported media type \"{ct}\" in request. This endpoint accepts application/json only, e.g. {{\"event_type\": \"COURSE_ENROLLMENT\"}}."
                ),
            ),
            ApiError::UnsupportedMediaType(ct) => detail(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "Unsupported media type \"{ct}\" in request. Send application/json, application/x-www-form-urlencoded or multipart/form-data."
                ),
            ),
            ApiError::Internal(e) if e.unavailable().is_some() => {
                // A full disk and the like: the client can retry once it is fixed.
                let cause = e.unavailable().unwrap_or_default();
                tracing::error!(error = %e, "the store cannot take the request: {cause}");
                let mut r = detail(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "The dispatcher cannot use its store: {cause}. Nothing was changed; retry the request once that is fixed."
                    ),
                );
                r.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_static(STORE_RETRY_AFTER),
                );
                r
            }
            ApiError::Internal(e) => {
                tracing::error!(error = %e, "internal error");
                detail(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "A server error occurred.".into(),
                )
            }
        }
    }
}

/// The 401/404/405/409/413 body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Detail {
    /// A human message, e.g. `Not found.`.
    #[schema(example = "Not found.")]
    pub detail: String,
}

// ---------------------------------------------------------------------------
// Auth (S5)
// ---------------------------------------------------------------------------

/// Refuses a changing request (anything but GET, HEAD, OPTIONS) that a browser sent
/// from a page of another origin. A browser that has the API's Basic login cached
/// (someone opened an API URL and typed the key at its prompt) attaches it to any
/// site's form post, so without this another site could create a webhook that copies
/// every event. Browsers name the page's origin in `Origin`; API clients (curl, SDKs)
/// send none, and the console is served from the API's own origin.
async fn refuse_cross_origin(request: Request, next: Next) -> Response {
    let changes = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if changes {
        if let Some(origin) = request.headers().get(header::ORIGIN) {
            let host = request
                .headers()
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !same_origin(origin.to_str().unwrap_or("null"), host) {
                return (
                    StatusCode::FORBIDDEN,
                    Json(json!({"detail": format!(
                        "A page of another origin ({}) may not change this API: browsers attach a cached login to such requests. Call the API from a program (no Origin header) or from the console at /ui.",
                        origin.to_str().unwrap_or("?")
                    )})),
                )
                    .into_response();
            }
        }
    }
    next.run(request).await
}

/// Whether the browser origin `origin` (`scheme://host[:port]`) is the origin the
/// request was addressed to (`Host`), default ports understood.
fn same_origin(origin: &str, host: &str) -> bool {
    let Ok(o) = reqwest::Url::parse(origin) else {
        return false; // "null" (a sandboxed page, a file) or garbage
    };
    let Ok(h) = reqwest::Url::parse(&format!("{}://{host}", o.scheme())) else {
        return false;
    };
    o.host_str().map(str::to_ascii_lowercase) == h.host_str().map(str::to_ascii_lowercase)
        && o.port_or_known_default() == h.port_or_known_default()
}

/// Checks `Authorization: Basic base64(KEY:)` in constant time.
async fn require_api_key(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(value) = request.headers().get(header::AUTHORIZATION) else {
        return Err(ApiError::Unauthorized(
            "Authentication credentials were not provided.".into(),
        ));
    };
    let value = value.to_str().unwrap_or("");
    let scheme = value.split_whitespace().next().unwrap_or("");
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(ApiError::Unauthorized(format!(
            "{} authentication is not accepted. Send the API key with HTTP Basic auth: the key as the username and an empty password (e.g. curl -u KEY: …).",
            if scheme.is_empty() { "This" } else { scheme }
        )));
    }
    let Some((username, password)) = decode_basic_auth(value) else {
        return Err(ApiError::Unauthorized(
            "Invalid basic header. Credentials not correctly base64 encoded.".into(),
        ));
    };
    #[cfg(feature = "faults")]
    if crate::faults::accept_key(&username, &password, &state.inner.settings.api_key) {
        return Ok(next.run(request).await);
    }
    let key_ok: bool = username
        .as_bytes()
        .ct_eq(state.inner.settings.api_key.as_bytes())
        .into();
    if !key_ok {
        return Err(ApiError::Unauthorized("Invalid username/password.".into()));
    }
    if !password.is_empty() {
        return Err(ApiError::Unauthorized(
            "Invalid username/password. The API key is the username; leave the password empty."
                .into(),
        ));
    }
    Ok(next.run(request).await)
}

/// 405 with the route's `Allow` header (axum adds it); `OPTIONS` answers 200 with the
/// same header and no body, as Django REST framework does.
async fn method_not_allowed(method: Method) -> Response {
    if method == Method::OPTIONS {
        return StatusCode::OK.into_response();
    }
    ApiError::MethodNotAllowed(method).into_response()
}

/// 404 for a path whose webhook id does not match `^[0-9a-z]+$` (S3), with an empty
/// `Allow` (no method applies to a resource that cannot exist; axum would otherwise
/// add the route's).
async fn require_webhook_id(request: Request, next: Next) -> Response {
    let id = request.uri().path().split('/').nth(3).unwrap_or("");
    if !hookjar_core::webhook::is_valid_id(id) {
        let mut r = ApiError::NotFound.into_response();
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(""));
        return r;
    }
    next.run(request).await
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

// ---------------------------------------------------------------------------
// Bodies: JSON, form-urlencoded and multipart (S2, S6)
// ---------------------------------------------------------------------------

/// A request body read into JSON or form pairs.
enum Input {
    Json(Value),
    Form(Vec<(String, String)>),
}

/// Reads at most [`MAX_BODY`] bytes and parses them by `Content-Type`.
async fn read_input(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Input, ApiError> {
    Ok(read_input_bytes(state, headers, body).await?.0)
}

/// [`read_input`], with the bytes it parsed.
async fn read_input_bytes(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Input, bytes::Bytes), ApiError> {
    let bytes = read_body(body, state.inner.settings.body_idle).await?;
    let input = parse_input(headers, &bytes).await?;
    Ok((input, bytes))
}

/// Parses a body by `Content-Type`.
async fn parse_input(headers: &HeaderMap, bytes: &bytes::Bytes) -> Result<Input, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => parse_json(bytes).map(Input::Json),
        e if e.ends_with("+json") => parse_json(bytes).map(Input::Json),
        "application/x-www-form-urlencoded" => serde_urlencoded::from_bytes(bytes)
            .map(Input::Form)
            .map_err(|e| {
                ApiError::Validation(ValidationErrors::non_field(format!(
                    "Form parse error - {e}"
                )))
            }),
        "multipart/form-data" => read_multipart(&content_type, bytes.clone())
            .await
            .map(Input::Form),
        "" if bytes.is_empty() => Ok(Input::Form(Vec::new())),
        _ => Err(ApiError::UnsupportedMediaType(content_type)),
    }
}

/// At most [`MAX_BODY`] bytes (a larger declared `content-length` is refused unread),
/// the client silent for at most `idle` at a time.
async fn read_body(body: Body, idle: std::time::Duration) -> Result<bytes::Bytes, ApiError> {
    hookjar_net::read_body(body, MAX_BODY, idle)
        .await
        .map_err(|e| match e {
            hookjar_net::BodyError::TooLarge { .. } => ApiError::TooLarge,
            e @ (hookjar_net::BodyError::Stalled { .. }
            | hookjar_net::BodyError::TooSlow { .. }) => ApiError::BodyStalled(e),
            e @ hookjar_net::BodyError::Failed(_) => ApiError::BodyFailed(e),
        })
}

fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::Validation(ValidationErrors::non_field(format!(
            "JSON parse error - {e}"
        )))
    })
}

async fn read_multipart(
    content_type: &str,
    bytes: bytes::Bytes,
) -> Result<Vec<(String, String)>, ApiError> {
    let bad = |m: String| ApiError::Validation(ValidationErrors::non_field(m));
    let request = Request::builder()
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(bytes))
        .map_err(|e| bad(format!("Multipart form parse error - {e}")))?;
    let mut form = axum::extract::Multipart::from_request(request, &())
        .await
        .map_err(|e| bad(format!("Multipart form parse error - {}", e.body_text())))?;
    let mut pairs = Vec::new();
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| bad(format!("Multipart form parse error - {}", e.body_text())))?
    {
        let name = field.name().unwrap_or("").to_owned();
        let value = field
            .text()
            .await
            .map_err(|e| bad(format!("Multipart form parse error - {}", e.body_text())))?;
        pairs.push((name, value));
    }
    Ok(pairs)
}

// ---------------------------------------------------------------------------
// Response types (documented in the OpenAPI of X4)
// ---------------------------------------------------------------------------

/// A webhook (S3). A set password reads back as `"********"` unless the dispatcher
/// runs with `--reveal-secrets`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookResource {
    #[schema(example = "0k2x9q4m7c1ab")]
    pub id: String,
    #[schema(example = "https://example.com/hooks/skilljar")]
    pub target_url: String,
    pub active: bool,
    /// `HTTP_4XX_RESPONSE`, `RETRY_COUNT`, `TOO_MANY_REDIRECTS` or `ORG_DISABLED`.
    #[schema(value_type = Option<String>, example = json!(null))]
    pub deactivate_reason: Option<DeactivateReason>,
    /// One of the ten event types, or null for all.
    #[schema(value_type = Option<String>, example = "COURSE_ENROLLMENT")]
    pub event_type: Option<EventType>,
    pub basic_auth_username: String,
    #[schema(example = "********")]
    pub basic_auth_password: String,
    pub additional_headers: BTreeMap<String, String>,
}

impl WebhookResource {
    fn from_webhook(w: &Webhook, reveal: bool) -> Self {
        let w = w.view(reveal);
        WebhookResource {
            id: w.id,
            target_url: w.target_url,
            active: w.active,
            deactivate_reason: w.deactivate_reason,
            event_type: w.event_type,
            basic_auth_username: w.basic_auth_username,
            basic_auth_password: w.basic_auth_password,
            additional_headers: w.additional_headers,
        }
    }
}

/// A page of webhooks (S1).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookPage {
    pub count: u64,
    /// Absolute URL of the next page, or null.
    pub next: Option<String>,
    /// Absolute URL of the previous page, or null.
    pub previous: Option<String>,
    pub results: Vec<WebhookResource>,
}

/// A page of deliveries with their attempts (X2).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryPage {
    pub count: u64,
    pub next: Option<String>,
    pub previous: Option<String>,
    pub results: Vec<DeliveryView>,
}

/// The answer of a ping (S13).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PingResult {
    /// Whether the endpoint answered 2xx.
    pub succeeded: bool,
    /// The status received, or null when there was none (connection refused, …).
    pub http_status_code: Option<u16>,
    /// What happened, in words.
    pub message: String,
}

/// The answer of `POST /v1/events` (X1).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EmitResult {
    /// The event's internal id (payloads carry no id, S11).
    pub event: String,
    /// How many deliveries were queued (S12).
    pub deliveries: usize,
}

/// The answer of a redeliver request (X2).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RedeliverResult {
    /// The new delivery's id.
    pub delivery: String,
}

/// A sample event (S6b).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SampleResult {
    /// One event of the type, with a fresh timestamp.
    #[schema(value_type = Vec<Object>)]
    pub results: Vec<Value>,
}

// ---------------------------------------------------------------------------
// Pagination (S1)
// ---------------------------------------------------------------------------

/// A parsed `?page=&page_size=`.
struct PageRequest {
    page: u64,
    /// `page=last`: `page` is set once the count is known.
    last: bool,
    size: u64,
    /// The other query pairs, kept in `next`/`previous` links.
    others: Vec<(String, String)>,
}

impl PageRequest {
    fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(query.unwrap_or("")).unwrap_or_default();
        let mut page = 1;
        let mut last = false;
        let mut size = DEFAULT_PAGE_SIZE;
        let mut others = Vec::new();
        for (k, v) in pairs {
            match k.as_str() {
                // DRF: "last" is the last page; anything else must be a positive integer.
                "page" => {
                    last = v == "last";
                    if !last {
                        page = v
                            .parse::<u64>()
                            .ok()
                            .filter(|&p| p > 0)
                            .ok_or(ApiError::InvalidPage)?;
                    }
                }
                // DRF ignores a bad page_size and clamps a large one.
                "page_size" => {
                    if let Ok(n) = v.parse::<u64>() {
                        if n > 0 {
                            size = n.min(MAX_PAGE_SIZE);
                        }
                    }
                }
                _ => others.push((k, v)),
            }
        }
        Ok(PageRequest {
            page,
            last,
            size,
            others,
        })
    }

    /// Resolves `last` and checks the page exists (page 1 always does).
    fn resolve(&mut self, count: u64) -> Result<(), ApiError> {
        let pages = count.div_ceil(self.size).max(1);
        if self.last {
            self.page = pages;
        }
        if self.page > pages {
            return Err(ApiError::InvalidPage);
        }
        Ok(())
    }

    fn offset(&self) -> u64 {
        (self.page - 1).saturating_mul(self.size)
    }

    /// DRF's `next`/`previous` links: the request URL with `page` replaced (or, for
    /// page 1, removed).
    fn links(&self, base: &str, path: &str, count: u64) -> (Option<String>, Option<String>) {
        let link = |page: u64| {
            let mut pairs = self.others.clone();
            if page > 1 {
                pairs.push(("page".into(), page.to_string()));
            }
            if self.size != DEFAULT_PAGE_SIZE {
                pairs.push(("page_size".into(), self.size.to_string()));
            }
            let q = serde_urlencoded::to_string(&pairs).unwrap_or_default();
            if q.is_empty() {
                format!("{base}{path}")
            } else {
                format!("{base}{path}?{q}")
            }
        };
        let next = (self.page.saturating_mul(self.size) < count).then(|| link(self.page + 1));
        let previous = (self.page > 1).then(|| link(self.page - 1));
        (next, previous)
    }
}

/// `http://HOST` from the Host header, else the listener's address.
fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && !h.contains(['/', ' ', '\\']))
        .map(|h| format!("http://{h}"))
        .unwrap_or_else(|| state.inner.settings.base_url.clone())
}

/// The `{id}` of a path. An id that does not decode (`%ff`: not UTF-8) names nothing,
/// so it is answered like any unknown id — 404 with the API's JSON `detail` — rather
/// than with axum's plain-text rejection.
struct Id(String);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(id)| Id(id))
            .map_err(|_| ApiError::NotFound)
    }
}

// ---------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------

/// Checks the API key (S5): an empty 200 when it is good.
async fn ping_api() -> StatusCode {
    StatusCode::OK
}

/// Lists webhooks, oldest first (S1).
async fn list_webhooks(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Result<Json<WebhookPage>, ApiError> {
    let mut page = PageRequest::parse(uri.query())?;
    #[cfg(feature = "faults")]
    {
        crate::faults::default_page_size(&mut page.size, uri.query());
        crate::faults::page_size(&mut page.size, uri.query());
    }
    let (count, _) = state.inner.store.list_webhooks(0, 0).await?;
    page.resolve(count)?;
    let (count, hooks) = state
        .inner
        .store
        .list_webhooks(page.offset(), page.size)
        .await?;
    let (next, previous) = page.links(&base_url(&state, &headers), uri.path(), count);
    let reveal = state.inner.settings.reveal_secrets;
    #[cfg(feature = "faults")]
    let (hooks, reveal) = crate::faults::list(hooks, reveal);
    Ok(Json(WebhookPage {
        count,
        next,
        previous,
        results: hooks
            .iter()
            .map(|w| WebhookResource::from_webhook(w, reveal))
            .collect(),
    }))
}

/// Creates a webhook (S2) from a JSON, form-urlencoded or multipart body.
async fn create_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<WebhookResource>), ApiError> {
    let input = read_input(&state, &headers, body).await?;
    #[cfg(feature = "faults")]
    let (input, taken, long_url) = match input {
        Input::Json(mut v) => {
            let taken = crate::faults::take_authorization(&mut v);
            let long_url = crate::faults::before_create(&mut v);
            (Input::Json(v), taken, long_url)
        }
        other => (other, None, None),
    };
    let new = match input {
        Input::Json(v) => NewWebhook::from_json(&v),
        Input::Form(pairs) => NewWebhook::from_form(&pairs),
    }
    .map_err(ApiError::Validation)?;
    #[cfg(feature = "faults")]
    let new = {
        let mut new = new;
        crate::faults::put_authorization(&mut new.additional_headers, taken);
        if let Some(url) = long_url {
            new.target_url = url;
        }
        new
    };
    let now = state.inner.clock.now();
    let webhook = state.inner.store.create_webhook(new, now).await?;
    tracing::info!(webhook = %webhook.id, "webhook created");
    Ok((
        StatusCode::CREATED,
        Json(WebhookResource::from_webhook(
            &webhook,
            state.inner.settings.reveal_secrets,
        )),
    ))
}

/// Retrieves a webhook (S4); `sample-<type>` ids answer S6b's samples.
async fn retrieve_webhook(State(state): State<AppState>, Id(id): Id) -> Result<Response, ApiError> {
    if let Some(kebab) = id.strip_prefix("sample-") {
        return sample(&state, kebab).map(IntoResponse::into_response);
    }
    let webhook = state
        .inner
        .store
        .get_webhook(id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(WebhookResource::from_webhook(
        &webhook,
        state.inner.settings.reveal_secrets,
    ))
    .into_response())
}

/// One sample event of a type, with a fresh timestamp (S6b): `sample-course-completion`,
/// …, `sample-vilt-registration`.
fn sample(state: &AppState, kebab: &str) -> Result<Json<SampleResult>, ApiError> {
    let t = EventType::from_kebab(kebab).ok_or(ApiError::NotFound)?;
    let event = Event::fixture(t, state.inner.clock.wall_datetime());
    #[cfg(feature = "faults")]
    let event = crate::faults::sample(&event);
    Ok(Json(SampleResult {
        results: vec![event.to_value()],
    }))
}

/// Updates a webhook (S4). PUT and PATCH both accept a partial body; `active: true`
/// re-activates and clears `deactivate_reason`.
async fn update_webhook(
    State(state): State<AppState>,
    Id(id): Id,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<WebhookResource>, ApiError> {
    // An unknown id is 404 whatever the body (S4).
    state
        .inner
        .store
        .get_webhook(id.clone())
        .await?
        .ok_or(ApiError::NotFound)?;
    let patch = match read_input(&state, &headers, body).await? {
        Input::Json(v) => WebhookPatch::from_json(&v),
        Input::Form(pairs) => WebhookPatch::from_form(&pairs),
    }
    .map_err(ApiError::Validation)?;
    #[cfg(feature = "faults")]
    let patch = crate::faults::patch(patch);
    let webhook = state
        .inner
        .store
        .update_webhook(id, patch)
        .await?
        .ok_or(ApiError::NotFound)?;
    tracing::info!(webhook = %webhook.id, active = webhook.active, "webhook updated");
    Ok(Json(WebhookResource::from_webhook(
        &webhook,
        state.inner.settings.reveal_secrets,
    )))
}

/// Deletes a webhook with its delivery log (S4).
async fn delete_webhook(State(state): State<AppState>, Id(id): Id) -> Result<StatusCode, ApiError> {
    if state.inner.store.delete_webhook(id.clone()).await? {
        tracing::info!(webhook = %id, "webhook deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        #[cfg(feature = "faults")]
        if crate::faults::on(crate::faults::Fault::DeleteUnknown204) {
            return Ok(StatusCode::NO_CONTENT);
        }
        Err(ApiError::NotFound)
    }
}

/// Sends a PING to the webhook now (S13). Never retried, never deactivates.
async fn ping_webhook(State(state): State<AppState>, Id(id): Id) -> Result<Response, ApiError> {
    // Skilljar answers an unknown id with a bare 404 (S13).
    let Some(webhook) = state.inner.store.get_webhook(id).await? else {
        return Ok(StatusCode::NOT_FOUND.into_response());
    };
    #[cfg(feature = "faults")]
    if crate::faults::refuse_ping(&webhook) {
        return Ok((
            StatusCode::CONFLICT,
            Json(serde_json::json!({"detail": "The webhook is inactive."})),
        )
            .into_response());
    }
    let body = Event::ping(state.inner.clock.wall_datetime()).to_payload();
    let request = DeliveryRequest::for_webhook(&webhook, body);
    #[cfg(feature = "faults")]
    let request = crate::faults::ping_request(request);
    let sent = state.inner.sender.send(&request).await;
    #[cfg(feature = "faults")]
    crate::faults::after_ping(&state.inner.store, &webhook.id, &sent.outcome).await;
    let (succeeded, message) = hookjar_core::verdict::ping_answer(&sent.outcome, sent.downgraded);
    tracing::info!(webhook = %webhook.id, latency_ms = sent.latency.as_millis() as u64, "ping: {}", sent.outcome);
    let http_status_code = sent.outcome.status_code();
    #[cfg(feature = "faults")]
    let (succeeded, http_status_code) = crate::faults::ping_answer(succeeded, http_status_code);
    Ok(Json(PingResult {
        succeeded,
        http_status_code,
        message,
    })
    .into_response())
}

/// Toolkit extension: deactivates a webhook as an organisation-level shut-off would
/// (`ORG_DISABLED`, S18) and drops its pending deliveries. Not in Skilljar's API.
async fn deactivate_webhook(
    State(state): State<AppState>,
    Id(id): Id,
) -> Result<Json<WebhookResource>, ApiError> {
    let webhook = state
        .inner
        .store
        .deactivate_webhook(id, DeactivateReason::OrgDisabled)
        .await?
        .ok_or(ApiError::NotFound)?;
    tracing::warn!(webhook = %webhook.id, "webhook deactivated by an admin (ORG_DISABLED)");
    Ok(Json(WebhookResource::from_webhook(
        &webhook,
        state.inner.settings.reveal_secrets,
    )))
}

/// Toolkit extension (X2): a webhook's deliveries, oldest first, each with every
/// attempt.
async fn list_deliveries(
    State(state): State<AppState>,
    Id(id): Id,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Result<Json<DeliveryPage>, ApiError> {
    let mut page = PageRequest::parse(uri.query())?;
    let store = &state.inner.store;
    let timeline = state.inner.clock.timeline();
    let (count, _) = store
        .deliveries_of(id.clone(), 0, 0, timeline)
        .await?
        .ok_or(ApiError::NotFound)?;
    page.resolve(count)?;
    let (count, results) = store
        .deliveries_of(id, page.offset(), page.size, timeline)
        .await?
        .ok_or(ApiError::NotFound)?;
    let (next, previous) = page.links(&base_url(&state, &headers), uri.path(), count);
    Ok(Json(DeliveryPage {
        count,
        next,
        previous,
        results,
    }))
}

/// Toolkit extension (X2): queues the same bytes to the same webhook again, as a new
/// delivery.
async fn redeliver(
    State(state): State<AppState>,
    Id(id): Id,
) -> Result<(StatusCode, Json<RedeliverResult>), ApiError> {
    let now = state.inner.clock.now();
    match state.inner.store.redeliver(id, now).await? {
        Redeliver::Queued(delivery) => {
            state.inner.wake.notify_one();
            Ok((StatusCode::ACCEPTED, Json(RedeliverResult { delivery })))
        }
        Redeliver::NotFound => Err(ApiError::NotFound),
        Redeliver::Inactive(webhook) => Err(ApiError::Conflict(format!(
            "Webhook {webhook} is inactive; re-activate it first (PUT {{\"active\": true}})."
        ))),
    }
}

/// Toolkit extension (X1): emits an event. The body is `{"event_type": T, …}`: T's
/// fixture with a fresh timestamp, other top-level keys replacing the fixture's. The
/// event and its deliveries are stored before the answer (S19).
async fn emit_event(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<EmitResult>), ApiError> {
    let (input, bytes) = read_input_bytes(&state, &headers, body).await?;
    let value = match input {
        Input::Json(v) => {
            // Valid JSON (it parsed), so also valid UTF-8.
            let text = std::str::from_utf8(&bytes).unwrap_or_default();
            if let Some(literal) = hookjar_core::payload::wide_integer(text) {
                return Err(ApiError::Validation(ValidationErrors::non_field(format!(
                    "JSON parse error - {literal} is an integer beyond 64 bits, which hookjar \
                     cannot deliver exactly (it would become a float); send it as a string."
                ))));
            }
            v
        }
        Input::Form(_) => {
            let ct = headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/x-www-form-urlencoded")
                .to_owned();
            return Err(ApiError::JsonOnly(ct));
        }
    };
    let (event_type, timestamp, overrides) = read_emit(value).map_err(ApiError::Validation)?;
    let mut event = Event::fixture(event_type, state.inner.clock.wall_datetime());
    event.merge_top_level(overrides);
    if let Some(t) = timestamp {
        event.timestamp = t;
    }
    let id = webhook_id(rand::random());
    let now = state.inner.clock.now();
    let body = event.to_payload();
    let digest = body.digest();
    let deliveries = state
        .inner
        .store
        .emit(
            NewEvent {
                id: id.clone(),
                event_type,
                body,
            },
            now,
        )
        .await?;
    state.inner.wake.notify_one();
    tracing::info!(event = %id, %event_type, %digest, deliveries, "event emitted");
    Ok((
        StatusCode::ACCEPTED,
        Json(EmitResult {
            event: id,
            deliveries,
        }),
    ))
}

/// An X1 body: the type, the `timestamp` override (kept verbatim when valid ISO
/// 8601) and the other top-level keys that replace the fixture's.
type EmitBody = (EventType, Option<String>, Map<String, Value>);

/// Splits an X1 body into its type, its timestamp override and the top-level keys
/// that replace the fixture's.
fn read_emit(value: Value) -> Result<EmitBody, ValidationErrors> {
    let Value::Object(mut map) = value else {
        return Err(ValidationErrors::non_field(format!(
            "Invalid data. Expected a dictionary, but got {}.",
            json_kind(&value)
        )));
    };
    let mut errors = ValidationErrors::default();
    let t = match map.shift_remove("event_type") {
        None | Some(Value::Null) => {
            errors.add("event_type", "This field is required.");
            None
        }
        Some(Value::String(s)) => match EventType::ALL.into_iter().find(|t| t.as_str() == s) {
            Some(t) => Some(t),
            None => {
                errors.add(
                    "event_type",
                    format!(
                        "\"{s}\" is not a valid choice. Valid choices: {}.",
                        EventType::valid_names()
                    ),
                );
                None
            }
        },
        Some(other) => {
            errors.add(
                "event_type",
                format!("Expected an event type name, got {}.", json_kind(&other)),
            );
            None
        }
    };
    // X1: a given timestamp is kept as given if it is ISO 8601; else 400.
    let timestamp = match map.shift_remove("timestamp") {
        None => None,
        Some(Value::String(s)) if hookjar_core::payload::is_iso8601_timestamp(&s) => Some(s),
        Some(other) => {
            errors.add(
                "timestamp",
                format!(
                    "Enter a valid ISO 8601 date and time with an offset, such as 2015-02-13T18:57:55.066475+00:00 (got {}), or leave it out for the current time.",
                    match &other {
                        Value::String(s) => format!("{s:?}"),
                        v => json_kind(v).to_owned(),
                    }
                ),
            );
            None
        }
    };
    match t {
        Some(t) if errors.is_empty() => Ok((t, timestamp, map)),
        _ => Err(errors),
    }
}

/// The OpenAPI document (X4): see [`crate::openapi`].
async fn openapi_json() -> Json<Value> {
    Json(crate::openapi::document())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// S1: walking `next` links from page 1 visits every item exactly once, and
        /// each page's `previous` leads back.
        #[test]
        fn pages_cover_every_item_once(count in 0u64..500, size in proptest::option::of(1u64..150)) {
            let query = size.map(|s| format!("page_size={s}"));
            let mut page = PageRequest::parse(query.as_deref()).unwrap();
            let mut seen = 0;
            loop {
                page.resolve(count).unwrap();
                let on_page = count.saturating_sub(page.offset()).min(page.size);
                seen += on_page;
                let (next, previous) = page.links("http://h", "/v1/webhooks", count);
                prop_assert_eq!(previous.is_some(), page.page > 1);
                let Some(next) = next else { break };
                let q = next.split_once('?').unwrap().1;
                let following = PageRequest::parse(Some(q)).unwrap();
                prop_assert_eq!(following.page, page.page + 1);
                prop_assert_eq!(following.size, page.size);
                page = following;
            }
            prop_assert_eq!(seen, count);
            prop_assert!(page.size <= MAX_PAGE_SIZE);
        }
    }

    #[test]
    fn bad_pages_are_invalid_and_bad_sizes_ignored() {
        for q in ["page=0", "page=-1", "page=x", "page="] {
            assert!(
                matches!(PageRequest::parse(Some(q)), Err(ApiError::InvalidPage)),
                "{q}"
            );
        }
        assert_eq!(
            PageRequest::parse(Some("page_size=x")).ok().map(|p| p.size),
            Some(20)
        );
        assert_eq!(
            PageRequest::parse(Some("page_size=0")).ok().map(|p| p.size),
            Some(20)
        );
        let mut last = PageRequest::parse(Some("page=last&page_size=10"))
            .ok()
            .unwrap();
        last.resolve(25).ok().unwrap();
        assert_eq!(last.page, 3);
    }

    #[tokio::test]
    async fn a_full_disk_is_503_with_retry_after_and_the_cause() {
        let full = StoreError::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            None,
        ));
        let r = ApiError::Internal(full).into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], STORE_RETRY_AFTER);
        let body = axum::body::to_bytes(r.into_body(), 4096).await.unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("the store's disk is full"), "{text}");
        let other = StoreError::Task("boom".into());
        let r = ApiError::Internal(other).into_response();
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn emit_body_errors_name_the_field() {
        let e = read_emit(json!({"event_type": 5})).unwrap_err();
        assert_eq!(
            e.field("event_type"),
            ["Expected an event type name, got a number."]
        );
        let e = read_emit(json!([1])).unwrap_err();
        assert_eq!(
            e.field("non_field_errors"),
            ["Invalid data. Expected a dictionary, but got a list."]
        );
        let (t, ts, rest) =
            read_emit(json!({"event_type": "PATH_COMPLETION", "user": {}})).unwrap();
        assert_eq!(t, EventType::PathCompletion);
        assert_eq!(ts, None);
        assert_eq!(rest.keys().collect::<Vec<_>>(), ["user"]);
        let e =
            read_emit(json!({"event_type": "PATH_COMPLETION", "timestamp": "soon"})).unwrap_err();
        assert!(e.field("timestamp")[0].contains("ISO 8601"), "{e}");
    }
}
