//! `hookjar-mock`: a scriptable mock webhook receiver. Tell it exactly how to
//! misbehave; it remembers everything it was sent.
//!
//! Used by `hookjar mock` on the command line and as a library in tests, shaped after
//! wiremock-rs. Clause ids (S7…, X5) refer to `docs/spec.md`; the script language
//! and the HTTP endpoints are described in `docs/mock.md`.
//!
//! ```
//! use std::time::Duration;
//! use hookjar_mock::MockReceiver;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Fail every event twice, then accept it; require Basic auth.
//! let mock = MockReceiver::builder()
//!     .script("503*2,200")?
//!     .basic_auth("u", "p")
//!     .start()
//!     .await?;
//!
//! let client = reqwest::Client::new();
//! let body = r#"{"event_type":"PING","timestamp":"2026-01-01T00:00:00.000000+00:00"}"#;
//! let mut statuses = Vec::new();
//! for _ in 0..4 {
//!     let res = client
//!         .post(format!("{}/hook", mock.url()))
//!         .basic_auth("u", Some("p"))
//!         .header("content-type", "application/json")
//!         .header("user-agent", "skilljar")
//!         .body(body)
//!         .send()
//!         .await?;
//!     statuses.push(res.status().as_u16());
//! }
//! assert_eq!(statuses, [503, 503, 200, 200]);
//!
//! // Everything is in the journal, in arrival order.
//! let requests = mock.wait_for_requests(4, Duration::from_secs(5)).await?;
//! assert_eq!(requests[2].attempt, 2);
//! assert_eq!(requests[2].step, "200");
//! assert!(requests[0].violations.is_empty());
//!
//! // One delivery (one digest), four attempts, three gaps.
//! let deliveries = mock.deliveries();
//! assert_eq!(deliveries.len(), 1);
//! assert_eq!(deliveries[0].gaps.len(), 3);
//! # Ok(())
//! # }
//! ```
//!
//! Per-path and per-event-type scripts, and live changes:
//!
//! ```
//! use hookjar_core::EventType;
//! use hookjar_mock::MockReceiver;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mock = MockReceiver::builder()
//!     .per_request()
//!     .route("/flaky", "503*3,200")?
//!     .for_type(EventType::CourseCompletion, "410")?
//!     .require_header("x-client-id", "abc")
//!     .start()
//!     .await?;
//! assert!(mock.url().starts_with("http://127.0.0.1:"));
//!
//! mock.set_script("reset")?;
//! assert_eq!(mock.scripts().default.to_string(), "reset");
//! // A bad script is refused and the old one stays.
//! let err = mock.set_script("503*x").unwrap_err();
//! assert_eq!(err.column, 5);
//! assert_eq!(mock.scripts().default.to_string(), "reset");
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//! - [`config`] — the settings as plain data ([`Scripts`], [`Expectations`],
//!   [`MockConfig`] and its TOML form) and the flag parsers the CLI shares.
//! - [`decide`] — the synchronous, I/O-free decisions: checks (S7–S11, auth), which
//!   script and step answer, attempt counting, recording. Returns a [`decide::Plan`].
//! - [`record`] — [`RecordedRequest`], [`Delivery`] and the injectable [`Clock`].
//! - [`server`] — the hyper server: admin endpoints, performing plans (delays on
//!   tokio's clock, `reset`, `hang`, `garbage`), the journal file.
//! - [`errors`] — every error type.
//! - [`ui`] — the inspector page at `/_mock/ui` and the event stream at `/_mock/stream`.
//!
//! # Promises
//! - Decisions happen under one `std::sync::Mutex`, held briefly and never across an
//!   `.await`; a body is checked once, before the lock, on a borrowed view (no JSON
//!   tree); recording is O(1).
//! - Memory is bounded: the last `keep` requests (default 10,000) stay in memory,
//!   each as its rendered journal line; older ones are evicted one per new request
//!   and counted (`counts()`, `GET /_mock/stats`). Attempt numbers and script
//!   positions are kept for the `max(keep, 100,000)` most recently seen deliveries.
//! - Delays use `tokio::time::sleep`, so tests on a paused clock measure them exactly.
//! - `reset`, `hang` and `garbage` affect only their own connection; the server keeps
//!   serving.
//! - The journal file gets each request's line before the request is answered, in
//!   arrival order: the lines of one event-loop turn go out in one `write`, and only
//!   then are those requests answered, so a `kill -9` loses no answered request. A
//!   file that does not end with a newline (torn by a crash) gets one before this
//!   run's first line.
//! - Dropping the [`MockReceiver`] stops it; [`MockReceiver::shutdown`] also waits for
//!   every connection to close.

pub mod config;
pub mod decide;
pub mod errors;
pub mod record;
pub mod server;
pub mod ui;

pub use config::{Expectations, MockConfig, Per, ScriptUpdate, Scripts};
pub use decide::{Counts, DEFAULT_KEEP, DEFAULT_KEEP_BYTES};
pub use errors::{ConfigError, InvalidSetting, StartError, WaitError};
pub use hookjar_core::script::{Script, ScriptError};
pub use record::{Attempt, Clock, Delivery, FixedClock, RecordedRequest, SystemClock};
pub use server::{MockReceiver, MockReceiverBuilder};
