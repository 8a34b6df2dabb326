//! The inspector at `/_mock/ui` and the live stream at `/_mock/stream`.
//!
//! The page is three static files embedded in the binary (`ui/index.html`,
//! `ui/inspector.js`, `ui/style.css`): plain HTML, CSS and JavaScript, no build step and
//! nothing fetched from elsewhere. The page reads the journal through the same JSON
//! endpoints as any other client (`GET /_mock/requests`, `GET/PUT /_mock/script`,
//! `DELETE /_mock/requests`), so it does not depend on the receiver's in-memory record
//! type. This module adds only what those endpoints cannot give:
//!
//! - `GET /_mock/stream` — server-sent events: one `change` event whenever the journal
//!   changes (a request recorded, or a clear), carrying the journal's length. The page
//!   re-reads `GET /_mock/requests` on each. It costs the request path nothing: it
//!   subscribes to the watch channel the receiver already bumps when it records.
//! - `POST /_mock/ui/verdicts` — what Skilljar would conclude from each answer, from
//!   [`verdict`] (the rules are `hookjar-core`'s [`RetryPolicy::classify`]).
//! - `POST /_mock/ui/resend` — sends a recorded request again to a URL the user gives
//!   (from the receiver, so `User-Agent` and `Authorization` go as recorded).
//!
//! The two `POST` endpoints take only `Content-Type: application/json`, so a page on
//! another origin cannot call them without a CORS preflight, which the receiver never
//! grants.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use hookjar_core::script::{Action, Script};
use hookjar_core::{Outcome, RetryPolicy, TransportKind, Verdict};
use hookjar_net::BodyError;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{Either, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// The inspector page.
pub const UI_PATH: &str = "/_mock/ui";
/// The server-sent events endpoint.
pub const STREAM_PATH: &str = "/_mock/stream";

/// How long the dispatcher waits for an answer before counting a timeout (S18's
/// settled default, `hookjar serve --timeout`): a step delayed this long is a timeout.
pub const ASSUMED_TIMEOUT: Duration = Duration::from_secs(10);

/// A comment line every so often keeps proxies from closing an idle stream and lets
/// the server notice a browser that went away.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The largest body the UI's `POST` endpoints read (a resend carries a recorded body).
const MAX_UI_BODY: usize = crate::server::MAX_BODY + 64 * 1024;

const INDEX_HTML: &str = include_str!("../ui/index.html");
const INSPECTOR_JS: &str = include_str!("../ui/inspector.js");
/// The shared base of both web pages, then this page's own rules.
const STYLE_CSS: &str = concat!(
    include_str!("../../hookjar-net/ui/base.css"),
    include_str!("../ui/style.css")
);

/// Every resource the page loads comes from the receiver itself.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

type Events = BoxStream<'static, Result<Frame<Bytes>, Infallible>>;

/// The receiver's answer body: a whole body, or the event stream.
pub(crate) type Body = Either<Full<Bytes>, StreamBody<Events>>;

/// Wraps a whole answer as a [`Body`] answer (no allocation).
pub(crate) fn whole(res: Response<Full<Bytes>>) -> Response<Body> {
    res.map(Either::Left)
}

/// Whether this module answers `path`: the stream always, the page unless `--no-ui`.
pub(crate) fn claims(path: &str, ui: bool) -> bool {
    path == STREAM_PATH || (ui && (path == UI_PATH || path.starts_with("/_mock/ui/")))
}

/// Answers a path [`claims`] accepted. `changes` is the journal's change signal (any
/// watched number the receiver bumps when it records or clears: its value is only
/// passed on as the event's data); `shutdown` ends the stream when the receiver stops.
pub(crate) async fn handle<N>(
    req: Request<Incoming>,
    changes: watch::Receiver<N>,
    shutdown: watch::Receiver<bool>,
    body_idle: Duration,
    streams: &Arc<AtomicUsize>,
) -> Response<Body>
where
    N: std::fmt::Display + Send + Sync + 'static,
{
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    match (method, path.as_str()) {
        (Method::GET, STREAM_PATH) => match StreamSlot::take(streams) {
            Some(slot) => stream(changes, shutdown, slot),
            None => whole(too_many_streams()),
        },
        (Method::GET, "/_mock/ui" | "/_mock/ui/") => asset(INDEX_HTML, "text/html; charset=utf-8"),
        (Method::GET, "/_mock/ui/inspector.js") => {
            asset(INSPECTOR_JS, "text/javascript; charset=utf-8")
        }
        (Method::GET, "/_mock/ui/style.css") => asset(STYLE_CSS, "text/css; charset=utf-8"),
        (Method::POST, "/_mock/ui/verdicts") => {
            match read_json::<Vec<Answered>>(req, body_idle).await {
                Ok(answers) => {
                    let policy = RetryPolicy::default();
                    let verdicts: Vec<VerdictView> = answers
                        .iter()
                        .map(|a| verdict(&a.step, a.status, a.attempt, &policy))
                        .collect();
                    json(StatusCode::OK, &verdicts)
                }
                Err(res) => res,
            }
        }
        (Method::POST, "/_mock/ui/resend") => match read_json::<Resend>(req, body_idle).await {
            Ok(resend) => {
                let (status, answer) = resend_request(resend).await;
                json(status, &answer)
            }
            Err(res) => res,
        },
        (
            _,
            STREAM_PATH
            | "/_mock/ui"
            | "/_mock/ui/"
            | "/_mock/ui/inspector.js"
            | "/_mock/ui/style.css"
            | "/_mock/ui/verdicts"
            | "/_mock/ui/resend",
        ) => detail(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed here: GET /_mock/ui, GET /_mock/stream, POST /_mock/ui/verdicts, POST /_mock/ui/resend",
        ),
        (_, other) => detail(
            StatusCode::NOT_FOUND,
            format!("no inspector resource {other}; open /_mock/ui"),
        ),
    }
}

fn asset(text: &'static str, content_type: &'static str) -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-cache")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::CONTENT_SECURITY_POLICY, CSP)
        .body(Either::Left(Full::new(Bytes::from_static(text.as_bytes()))))
        .expect("static headers are valid")
}

fn json(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Either::Left(Full::new(Bytes::from(
            serde_json::to_vec(value).expect("answers serialise"),
        ))))
        .expect("a JSON answer is valid")
}

fn detail(status: StatusCode, detail: impl Into<String>) -> Response<Body> {
    json(status, &serde_json::json!({ "detail": detail.into() }))
}

/// Reads a JSON body, refusing other content types (see the module docs).
async fn read_json<T: serde::de::DeserializeOwned>(
    req: Request<Incoming>,
    idle: Duration,
) -> Result<T, Response<Body>> {
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
    if !is_json {
        return Err(detail(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the body as JSON with Content-Type: application/json",
        ));
    }
    let body = match hookjar_net::read_body(req.into_body(), MAX_UI_BODY, idle).await {
        Ok(b) => b,
        Err(BodyError::TooLarge { .. }) => {
            return Err(detail(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body must be under {MAX_UI_BODY} bytes"),
            ));
        }
        Err(e @ (BodyError::Stalled { .. } | BodyError::TooSlow { .. })) => {
            let mut res = detail(StatusCode::REQUEST_TIMEOUT, e.to_string());
            res.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
            return Err(res);
        }
        // The client went away: nobody reads this answer.
        Err(e @ BodyError::Failed(_)) => {
            return Err(detail(StatusCode::BAD_REQUEST, e.to_string()));
        }
    };
    serde_json::from_slice(&body).map_err(|e| {
        detail(
            StatusCode::BAD_REQUEST,
            format!("bad JSON body: {e}; see docs/mock.md (Inspector)"),
        )
    })
}

/// The server-sent events of `GET /_mock/stream`: a `change` event at once (so a
/// client knows it is connected), then one per change of the journal, until the
/// receiver shuts down.
/// The most event streams (`GET /_mock/stream`) served at once: one per browser with
/// the inspector open (its tabs share one). A stream holds its connection for as long as it is open, and connections
/// count against `--max-connections`: without a cap, clients that open streams and
/// never read them could take every connection and leave none for webhooks.
pub const MAX_STREAMS: usize = 64;

/// One open stream, counted until it ends.
pub(crate) struct StreamSlot(Arc<AtomicUsize>);

impl StreamSlot {
    fn take(open: &Arc<AtomicUsize>) -> Option<StreamSlot> {
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < MAX_STREAMS).then_some(n + 1)
        })
        .ok()
        .map(|_| StreamSlot(Arc::clone(open)))
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn too_many_streams() -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from(
        serde_json::json!({"detail": format!(
            "{MAX_STREAMS} live streams are open already (one per browser with the inspector open, or per tab where the browser cannot share one); close some, or stop the clients holding them"
        )})
        .to_string(),
    )));
    *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, http::HeaderValue::from_static("5"));
    res
}

fn stream<N>(
    changes: watch::Receiver<N>,
    shutdown: watch::Receiver<bool>,
    slot: StreamSlot,
) -> Response<Body>
where
    N: std::fmt::Display + Send + Sync + 'static,
{
    fn event(text: String) -> Result<Frame<Bytes>, Infallible> {
        Ok(Frame::data(Bytes::from(text)))
    }
    let events = futures::stream::unfold(
        (changes, shutdown, true, slot),
        |(mut changes, mut shutdown, first, slot)| async move {
            if first {
                let text = format!(
                    "retry: 1000\nevent: change\ndata: {}\n\n",
                    *changes.borrow_and_update()
                );
                return Some((event(text), (changes, shutdown, false, slot)));
            }
            enum Next {
                Changed,
                KeepAlive,
                End,
            }
            let next = tokio::select! {
                changed = changes.changed() => if changed.is_ok() { Next::Changed } else { Next::End },
                _ = shutdown.wait_for(|&down| down) => Next::End,
                () = tokio::time::sleep(KEEP_ALIVE) => Next::KeepAlive,
            };
            let text = match next {
                Next::Changed => format!("event: change\ndata: {}\n\n", *changes.borrow_and_update()),
                Next::KeepAlive => ": keep-alive\n\n".to_owned(),
                // The receiver stops (or is gone).
                Next::End => return None,
            };
            Some((event(text), (changes, shutdown, false, slot)))
        },
    )
    .boxed();
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Either::Right(StreamBody::new(events)))
        .expect("static headers are valid")
}

/// One journaled answer, as `GET /_mock/requests` lists it (only the keys needed).
#[derive(Debug, Deserialize)]
struct Answered {
    step: String,
    status: Option<u16>,
    attempt: u32,
}

/// What Skilljar would conclude from one answer of the receiver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerdictView {
    /// `delivered`, `retry`, `deactivate`, or `redirect` when the answer sends the
    /// dispatcher elsewhere (the verdict is then the answer there).
    pub verdict: String,
    /// In words, e.g. `HTTP 503 on retry 1; retry 2 in 4s`.
    pub detail: String,
}

/// What a Skilljar-style dispatcher would conclude if attempt `attempt` (0 = first
/// POST) got the answer the receiver gave: `step` is the journal's step (`503`,
/// `200@1500ms`, `reset`, `redirect=/b`, …) and `status` the status sent.
///
/// A step that waits [`ASSUMED_TIMEOUT`] or longer is a timeout, whatever it answers
/// after; `reset`, `hang` and `garbage` are transport failures; each `redirect` (to the
/// same URL, a loop, or to a target) is a hop the client follows within one attempt,
/// the loop ending at the client's redirect limit (S18). The rest is
/// [`RetryPolicy::classify`]/[`RetryPolicy::describe`].
pub fn verdict(step: &str, status: Option<u16>, attempt: u32, policy: &RetryPolicy) -> VerdictView {
    let parsed = Script::parse(step).ok();
    let step = parsed.as_ref().map(|s| &s.steps()[0]);
    let outcome = match step {
        Some(s) if s.delay >= ASSUMED_TIMEOUT && !matches!(s.action, Action::Hang) => {
            Outcome::transport(
                TransportKind::Timeout,
                format!(
                    "no answer within {}s (the answer waited {}ms)",
                    ASSUMED_TIMEOUT.as_secs(),
                    s.delay.as_millis()
                ),
            )
        }
        Some(s) => match &s.action {
            Action::Status(code) | Action::RetryAfter { code, .. } => Outcome::status(*code),
            Action::Reset => Outcome::transport(TransportKind::Reset, "connection reset"),
            Action::Hang => Outcome::transport(TransportKind::Timeout, "no answer"),
            Action::Garbage => Outcome::transport(TransportKind::Protocol, "not HTTP"),
            // Each hop of the loop is one request here, but all of them are one
            // attempt to the dispatcher: only the hop past its limit ends it.
            Action::Redirect(None) => {
                return VerdictView {
                    verdict: "redirect".to_owned(),
                    detail: "307 to the same URL: followed with the same POST, as the same attempt; after 10 such hops the client gives up and the webhook is deactivated (TOO_MANY_REDIRECTS, S18)".to_owned(),
                };
            }
            Action::Redirect(Some(target)) => {
                return VerdictView {
                    verdict: "redirect".to_owned(),
                    detail: format!(
                        "307 to {target}: followed with the same POST; the verdict is the answer there (S18)"
                    ),
                };
            }
            Action::RedirectTo { code, target } => {
                return VerdictView {
                    verdict: "redirect".to_owned(),
                    detail: if *code == 308 {
                        format!(
                            "308 to {target}: followed with the same POST; the verdict is the answer there (S18)"
                        )
                    } else {
                        format!(
                            "{code} to {target}: followed as a GET without the body, as Python's requests does, so the event is lost; the verdict is the GET's answer there (S18)"
                        )
                    },
                };
            }
        },
        None => match status {
            Some(code) => Outcome::status(code),
            None => Outcome::transport(TransportKind::Other, "no HTTP answer"),
        },
    };
    let verdict = policy.classify(&outcome, attempt);
    let mut detail = policy.describe(&outcome, attempt);
    if let Verdict::Deactivate { reason } = verdict {
        let clause = match reason {
            hookjar_core::DeactivateReason::Http4xxResponse => "S16",
            hookjar_core::DeactivateReason::RetryCount => "S15",
            _ => "S18",
        };
        detail.push_str(&format!(" ({clause})"));
    }
    if let Some(Action::RetryAfter { seconds, .. }) = step.map(|s| &s.action) {
        detail.push_str(&format!(
            "; Retry-After: {seconds} is ignored (S14's back-off and S16 decide)"
        ));
    }
    VerdictView {
        verdict: verdict.label().to_owned(),
        detail,
    }
}

/// A `POST /_mock/ui/resend` body: a recorded request and where to send it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Resend {
    url: String,
    #[serde(default = "post")]
    method: String,
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default)]
    body: String,
    /// The recorded request's digest (X5). The journal keeps a body as text, so a
    /// body that was not valid UTF-8 comes back with U+FFFD in it: with the digest
    /// given, a resend that would send other bytes than were received is refused.
    #[serde(default)]
    digest: Option<String>,
}

fn post() -> String {
    "POST".to_owned()
}

/// The answer to a resend: the status and the start of the body, or why it failed.
#[derive(Debug, Serialize)]
struct Resent {
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

/// Headers the connection owns, not the request: the client sets its own.
fn is_connection_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    matches!(
        name.as_str(),
        "host"
            | "content-length"
            | "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "expect"
    ) || name.starts_with("proxy-")
}

/// The longest piece of the answer's body a resend shows.
const RESENT_BODY_SHOWN: usize = 4096;

async fn resend_request(r: Resend) -> (StatusCode, Resent) {
    let failed = |status: StatusCode, why: String| {
        (
            status,
            Resent {
                status: None,
                body: None,
                detail: Some(why),
            },
        )
    };
    let url = match reqwest::Url::parse(r.url.trim()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => u,
        _ => {
            return failed(
                StatusCode::BAD_REQUEST,
                format!(
                    "{:?} is not an http(s) URL; give one like http://127.0.0.1:3000/hook",
                    r.url
                ),
            );
        }
    };
    if let Some(recorded) = &r.digest {
        let sending = hookjar_core::payload::Digest::of(r.body.as_bytes()).to_string();
        if !sending.eq_ignore_ascii_case(recorded) {
            return failed(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "not sent: the recorded body was not valid UTF-8, and the journal keeps it as text, so a resend would send other bytes (digest {sending}, not {recorded}); send the original bytes from their source instead"
                ),
            );
        }
    }
    let Ok(method) = Method::from_bytes(r.method.as_bytes()) else {
        return failed(
            StatusCode::BAD_REQUEST,
            format!("{:?} is not an HTTP method", r.method),
        );
    };
    let mut req = client().request(method, url);
    for (name, value) in &r.headers {
        if !is_connection_header(name) {
            req = req.header(name.as_str(), value.as_str());
        }
    }
    match req.body(r.body).send().await {
        Ok(mut res) => {
            let status = res.status().as_u16();
            // Read no more than can be shown (a character is at most 4 bytes) and
            // one byte more, to know whether there was more: an answer may be huge
            // or never end. The connection is dropped with the rest unread.
            let wanted = RESENT_BODY_SHOWN * 4 + 1;
            let mut start: Vec<u8> = Vec::new();
            while start.len() < wanted {
                match res.chunk().await {
                    Ok(Some(chunk)) => {
                        let take = chunk.len().min(wanted - start.len());
                        start.extend_from_slice(&chunk[..take]);
                    }
                    Ok(None) | Err(_) => break,
                }
            }
            let text = String::from_utf8_lossy(&start);
            let mut shown: String = text.chars().take(RESENT_BODY_SHOWN).collect();
            if shown.len() < text.len() {
                shown.push('…');
            }
            (
                StatusCode::OK,
                Resent {
                    status: Some(status),
                    body: Some(shown),
                    detail: None,
                },
            )
        }
        Err(e) => {
            let mut why = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                why.push_str(&format!(": {s}"));
                source = s.source();
            }
            failed(
                StatusCode::BAD_GATEWAY,
                format!("the request could not be sent: {why}"),
            )
        }
    }
}

/// One client for every resend: no redirects followed (the answer is shown as is),
/// the dispatcher's timeout.
fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(ASSUMED_TIMEOUT)
            .build()
            .expect("a plain HTTP client builds")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(step: &str, status: Option<u16>, attempt: u32) -> (String, String) {
        let v = verdict(step, status, attempt, &RetryPolicy::default());
        (v.verdict, v.detail)
    }

    #[test]
    fn verdicts_follow_the_retry_rules() {
        let cases: [(&str, Option<u16>, u32, &str, &str); 11] = [
            (
                "200",
                Some(200),
                0,
                "delivered",
                "HTTP 200 on first attempt; delivered",
            ),
            (
                "503",
                Some(503),
                0,
                "retry",
                "HTTP 503 on first attempt; retry 1 in 2s",
            ),
            (
                "503",
                Some(503),
                1,
                "retry",
                "HTTP 503 on retry 1; retry 2 in 4s",
            ),
            (
                "503",
                Some(503),
                60,
                "deactivate",
                "HTTP 503 on retry 60; deactivated (RETRY_COUNT) (S15)",
            ),
            (
                "410",
                Some(410),
                0,
                "deactivate",
                "HTTP 410 on first attempt; deactivated (HTTP_4XX_RESPONSE) (S16)",
            ),
            (
                "401",
                Some(401),
                2,
                "deactivate",
                "HTTP 401 on retry 2; deactivated (HTTP_4XX_RESPONSE) (S16)",
            ),
            (
                "reset",
                None,
                0,
                "retry",
                "reset: connection reset on first attempt; retry 1 in 2s",
            ),
            (
                "hang",
                None,
                0,
                "retry",
                "timeout: no answer on first attempt; retry 1 in 2s",
            ),
            (
                "garbage",
                None,
                3,
                "retry",
                "protocol: not HTTP on retry 3; retry 4 in 16s",
            ),
            (
                "200@11s",
                Some(200),
                0,
                "retry",
                "timeout: no answer within 10s (the answer waited 11000ms) on first attempt; retry 1 in 2s",
            ),
            (
                "200@1500ms",
                Some(200),
                0,
                "delivered",
                "HTTP 200 on first attempt; delivered",
            ),
        ];
        for (step, status, attempt, label, detail) in cases {
            assert_eq!(
                v(step, status, attempt),
                (label.to_owned(), detail.to_owned()),
                "{step} on attempt {attempt}"
            );
        }
        let (label, detail) = v("redirect=/b", Some(307), 0);
        assert_eq!(label, "redirect");
        assert!(detail.starts_with("307 to /b: followed"), "{detail}");
        let (label, detail) = v("303=/b", Some(303), 0);
        assert_eq!(label, "redirect");
        assert!(
            detail.starts_with("303 to /b: followed as a GET"),
            "{detail}"
        );
        let (label, detail) = v("308=/b", Some(308), 0);
        assert_eq!(label, "redirect");
        assert!(
            detail.starts_with("308 to /b: followed with the same POST"),
            "{detail}"
        );
        // Each hop of a loop is a redirect, not a deactivation of its own: only the
        // client's limit ends the attempt (a review saw 11 rows each "deactivate").
        for attempt in [0, 5, 10] {
            let (label, detail) = v("redirect", Some(307), attempt);
            assert_eq!(label, "redirect", "hop {attempt}");
            assert!(
                detail.contains("after 10 such hops") && detail.contains("TOO_MANY_REDIRECTS"),
                "{detail}"
            );
        }
        // A step the parser does not know falls back on the status sent.
        assert_eq!(v("???", Some(204), 0).0, "delivered");
        assert_eq!(v("???", None, 0).0, "retry");
    }

    proptest::proptest! {
        /// A status step gets exactly the core's verdict for that status; the same
        /// step delayed past the timeout gets the verdict of a timeout.
        #[test]
        fn status_steps_get_the_cores_verdict(code in 200u16..600, attempt in 0u32..=61, delay_ms in 0u64..20_000) {
            let policy = RetryPolicy::default();
            let plain = verdict(&code.to_string(), Some(code), attempt, &policy);
            proptest::prop_assert_eq!(
                plain.verdict.as_str(),
                policy.classify(&Outcome::status(code), attempt).label()
            );
            let delayed = verdict(&format!("{code}@{delay_ms}ms"), Some(code), attempt, &policy);
            let expected = if u128::from(delay_ms) >= ASSUMED_TIMEOUT.as_millis() {
                policy.classify(&Outcome::transport(TransportKind::Timeout, ""), attempt)
            } else {
                policy.classify(&Outcome::status(code), attempt)
            };
            proptest::prop_assert_eq!(delayed.verdict.as_str(), expected.label());
        }
    }

    #[test]
    fn the_router_claims_only_its_paths() {
        assert!(claims("/_mock/stream", false));
        assert!(claims("/_mock/ui", true));
        assert!(claims("/_mock/ui/inspector.js", true));
        assert!(!claims("/_mock/ui", false));
        assert!(!claims("/_mock/uix", true));
        assert!(!claims("/_mock/requests", true));
        assert!(!claims("/hook", true));
    }

    #[test]
    fn connection_headers_are_not_resent() {
        for h in [
            "Host",
            "content-length",
            "Connection",
            "Proxy-Authorization",
            "TE",
        ] {
            assert!(is_connection_header(h), "{h}");
        }
        for h in ["authorization", "user-agent", "content-type", "x-client-id"] {
            assert!(!is_connection_header(h), "{h}");
        }
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        // Every src/href is the receiver's own path or an anchor.
        for attr in ["src=\"", "href=\""] {
            for (i, _) in INDEX_HTML.match_indices(attr) {
                let value = &INDEX_HTML[i + attr.len()..];
                assert!(
                    value.starts_with("/_mock/ui/")
                        || value.starts_with('#')
                        || value.starts_with("data:,\""),
                    "{}",
                    &value[..value.find('"').unwrap_or(value.len())]
                );
            }
        }
        assert!(
            !INSPECTOR_JS.contains("://"),
            "the script names another origin"
        );
        assert!(!STYLE_CSS.contains("url(") && !STYLE_CSS.contains("@import"));
        assert!(INDEX_HTML.contains("/_mock/ui/inspector.js"));
        assert!(INDEX_HTML.contains("/_mock/ui/style.css"));
    }
}
