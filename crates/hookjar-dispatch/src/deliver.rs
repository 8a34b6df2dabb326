//! Sending one POST and naming what came of it as a core [`Outcome`].
//!
//! The request itself (URL, headers, body) is always built by
//! `hookjar_core::DeliveryRequest` (S7–S9); this module only performs it with reqwest
//! (rustls, one connection pool per target host, a redirect limit and a timeout) and
//! maps the result onto the core's outcome vocabulary, which `RetryPolicy::classify`
//! turns into a verdict.

use std::error::Error as _;
use std::time::Duration;

use hookjar_core::{DeliveryRequest, Outcome, TransportKind};
use tokio::time::Instant;

use crate::error::StartError;

/// The most of a receiver's answer body that is read (and thrown away, S17) so the
/// connection can be reused.
const DRAIN_LIMIT: usize = 64 * 1024;

/// An HTTP client for deliveries and pings.
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
    max_redirects: usize,
}

/// Redirects followed before `TOO_MANY_REDIRECTS` (S18, settled).
pub const MAX_REDIRECTS: usize = 10;

/// How much of an answer's body is kept for people to read (`hookjar send`, `check`);
/// the dispatcher itself ignores it (S17).
pub const BODY_KEPT: usize = 2048;

/// One attempt's result: the outcome, how long it took, and the start of the answer's
/// body (at most [`BODY_KEPT`] bytes, lossy UTF-8; empty without an answer).
#[derive(Debug, Clone)]
pub struct Sent {
    pub outcome: Outcome,
    pub latency: Duration,
    pub body: String,
}

impl Sender {
    /// A client following at most `max_redirects` redirects (S18), giving up on an
    /// answer after `timeout`.
    pub fn new(timeout: Duration, max_redirects: usize) -> Result<Self, StartError> {
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .redirect(reqwest::redirect::Policy::limited(max_redirects))
            .timeout(timeout)
            .build()
            .map_err(StartError::Client)?;
        Ok(Sender {
            client,
            max_redirects,
        })
    }

    /// Sends the request and names the outcome. Never fails: every failure is an
    /// outcome.
    pub async fn send(&self, request: &DeliveryRequest) -> Sent {
        let started = Instant::now();
        let (outcome, body) = self.try_send(request).await;
        Sent {
            outcome,
            latency: started.elapsed(),
            body,
        }
    }

    async fn try_send(&self, request: &DeliveryRequest) -> (Outcome, String) {
        let headers = match request.header_map() {
            Ok(h) => h,
            Err(e) => {
                return (
                    Outcome::transport(TransportKind::Other, e.to_string()),
                    String::new(),
                );
            }
        };
        #[cfg(feature = "faults")]
        if let Some(r) = crate::faults::send(request, &headers, self.max_redirects).await {
            return r;
        }
        let result = self
            .client
            .post(&request.url)
            .headers(headers)
            .body(request.body.bytes().clone())
            .send()
            .await;
        match result {
            Ok(mut response) => {
                let code = response.status().as_u16();
                // S17: the body is ignored; read a little so the connection is reused,
                // keeping its start for people to read.
                let mut read = 0;
                let mut kept = Vec::new();
                while read < DRAIN_LIMIT {
                    match response.chunk().await {
                        Ok(Some(chunk)) => {
                            read += chunk.len();
                            let room = BODY_KEPT.saturating_sub(kept.len());
                            kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
                        }
                        _ => break,
                    }
                }
                (
                    Outcome::status(code),
                    String::from_utf8_lossy(&kept).into_owned(),
                )
            }
            Err(e) => (self.classify_error(&e), String::new()),
        }
    }

    fn classify_error(&self, e: &reqwest::Error) -> Outcome {
        if e.is_redirect() {
            return Outcome::TooManyRedirects {
                hops: u32::try_from(self.max_redirects + 1).unwrap_or(u32::MAX),
            };
        }
        if e.is_timeout() {
            return Outcome::transport(TransportKind::Timeout, "no answer within the timeout");
        }
        let root = root_cause(e);
        let kind = if let Some(io) = io_error(e) {
            use std::io::ErrorKind as K;
            match io.kind() {
                K::ConnectionRefused => {
                    return Outcome::transport(TransportKind::Connect, "connection refused");
                }
                K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
                    return Outcome::transport(TransportKind::Reset, "connection reset");
                }
                K::TimedOut => TransportKind::Timeout,
                _ if e.is_connect() => TransportKind::Connect,
                _ => TransportKind::Other,
            }
        } else if looks_like_tls(&root) {
            TransportKind::Tls
        } else if e.is_connect() {
            TransportKind::Connect
        } else if root.contains("connection closed")
            || root.contains("IncompleteMessage")
            || root.contains("incomplete")
        {
            TransportKind::Reset
        } else if e.is_body() || e.is_decode() || root.contains("parse") {
            TransportKind::Protocol
        } else {
            TransportKind::Other
        };
        Outcome::transport(kind, root)
    }
}

/// The innermost error message of a chain.
fn root_cause(e: &reqwest::Error) -> String {
    let mut cur: &dyn std::error::Error = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// The `io::Error` somewhere in the chain, if any.
fn io_error(e: &reqwest::Error) -> Option<&std::io::Error> {
    let mut cur = e.source();
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        cur = err.source();
    }
    None
}

fn looks_like_tls(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    m.contains("certificate") || m.contains("tls") || m.contains("handshake")
}
