//! The console at `/ui`: webhooks, emit, and each delivery's timeline.
//!
//! Three static files embedded in the binary (`ui/index.html`, `ui/console.js`,
//! `ui/style.css`): plain HTML, CSS and JavaScript, no build step and nothing fetched
//! from elsewhere. The page holds no data of its own: it asks for the API key, keeps it
//! in the tab's `sessionStorage`, and calls the management API (`/v1/...`) with it as
//! HTTP Basic auth, exactly as any client does. So the console is behind the same key
//! as the API, and the key never appears in a URL.
//!
//! The one thing the API does not say is what time it is for the dispatcher:
//! `GET /ui/clock` answers `{"now": "<dispatcher time>", "time_scale": N}` so the page
//! can count down to a delivery's next attempt in dispatcher time (X3). It carries no
//! webhook or event data.

use axum::Json;
use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use crate::clock::{Clock, format_micros};

const INDEX_HTML: &str = include_str!("../ui/index.html");
const CONSOLE_JS: &str = include_str!("../ui/console.js");
/// The shared base of both web pages, then this page's own rules.
const STYLE_CSS: &str = concat!(
    include_str!("../../hookjar-net/ui/base.css"),
    include_str!("../ui/style.css")
);

/// Every resource the page loads comes from the dispatcher itself.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The console's routes, to merge into the API's router.
pub fn router<S: Clone + Send + Sync + 'static>(clock: Clock) -> Router<S> {
    Router::new()
        .route(
            "/ui",
            get(|| async { asset(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/ui/",
            get(|| async { asset(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/ui/console.js",
            get(|| async { asset(CONSOLE_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/ui/style.css",
            get(|| async { asset(STYLE_CSS, "text/css; charset=utf-8") }),
        )
        .route("/ui/clock", get(move || async move { now(clock) }))
}

fn asset(text: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
        ],
        text,
    )
        .into_response()
}

/// `GET /ui/clock`.
#[derive(Debug, Serialize)]
struct Now {
    /// Dispatcher time, in the S11 timestamp form the delivery log uses.
    now: String,
    /// X3's time scale: dispatcher seconds per real second.
    time_scale: f64,
}

fn now(clock: Clock) -> Response {
    let now = format_micros(clock.now());
    (
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(Now {
            now,
            time_scale: clock.scale(),
        }),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        for attr in ["src=\"", "href=\""] {
            for (i, _) in INDEX_HTML.match_indices(attr) {
                let value = &INDEX_HTML[i + attr.len()..];
                assert!(
                    value.starts_with("/ui/")
                        || value.starts_with('#')
                        || value.starts_with("data:,\""),
                    "{}",
                    &value[..value.find('"').unwrap_or(value.len())]
                );
            }
        }
        // The SVG namespace is a name, not a resource.
        let js = CONSOLE_JS.replace("'http://www.w3.org/2000/svg'", "");
        assert!(!js.contains("://"), "the script names another origin");
        assert!(!STYLE_CSS.contains("url(") && !STYLE_CSS.contains("@import"));
    }

    #[test]
    fn the_key_never_goes_in_a_url_or_local_storage() {
        assert!(!CONSOLE_JS.contains("localStorage"));
        assert!(!CONSOLE_JS.contains("?key") && !CONSOLE_JS.contains("api_key="));
        assert!(CONSOLE_JS.contains("sessionStorage"));
    }
}
