//! Sends a [`DeliveryRequest`] as Skilljar would and reports what came back as an
//! [`Outcome`]: the I/O edge of `hookjar send`, `replay` and `check`.

use std::time::Duration;

use hookjar_core::{DeliveryRequest, Outcome, TransportKind};

/// The most redirects followed before `TOO_MANY_REDIRECTS` (S18).
pub const MAX_REDIRECTS: usize = 10;

/// What one POST came to.
#[derive(Debug, Clone)]
pub struct Sent {
    /// Status, too many redirects, or a transport failure.
    pub outcome: Outcome,
    /// From sending to the end of the answer's body.
    pub latency: Duration,
    /// The answer's body, cut to 2 KiB (empty on transport failures).
    pub body: String,
}

/// Builds the HTTP client: rustls, at most [`MAX_REDIRECTS`] redirects, `timeout` for a
/// whole exchange, no proxy from the environment (deliveries go where they are sent).
pub fn client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
        .timeout(timeout)
        .no_proxy()
        .build()
}

/// POSTs `request` once.
pub async fn send(client: &reqwest::Client, request: &DeliveryRequest) -> Sent {
    let started = tokio::time::Instant::now();
    let headers = match request.header_map() {
        Ok(h) => h,
        Err(e) => {
            return Sent {
                outcome: Outcome::transport(TransportKind::Other, e.to_string()),
                latency: Duration::ZERO,
                body: String::new(),
            };
        }
    };
    let result = client
        .post(&request.url)
        .headers(headers)
        .body(request.body.bytes().clone())
        .send()
        .await;
    let (outcome, body) = match result {
        Ok(resp) => {
            let code = resp.status().as_u16();
            match resp.bytes().await {
                Ok(b) => {
                    let cut = &b[..b.len().min(2048)];
                    (Outcome::status(code), String::from_utf8_lossy(cut).into_owned())
                }
                Err(e) => (outcome_of(&e), String::new()),
            }
        }
        Err(e) => (outcome_of(&e), String::new()),
    };
    Sent {
        outcome,
        latency: started.elapsed(),
        body,
    }
}

/// Maps a client error onto S18's outcomes.
pub fn outcome_of(err: &reqwest::Error) -> Outcome {
    if err.is_redirect() {
        return Outcome::TooManyRedirects {
            hops: MAX_REDIRECTS as u32 + 1,
        };
    }
    let chain = error_chain(err);
    let kind = if err.is_timeout() {
        TransportKind::Timeout
    } else if err.is_connect() {
        if chain.contains("certificate") || chain.contains("tls") || chain.contains("TLS") {
            TransportKind::Tls
        } else {
            TransportKind::Connect
        }
    } else if chain.contains("reset") || chain.contains("closed") || chain.contains("incomplete")
    {
        TransportKind::Reset
    } else if chain.contains("parse") || chain.contains("invalid HTTP") {
        TransportKind::Protocol
    } else {
        TransportKind::Other
    };
    Outcome::transport(kind, chain)
}

/// The error and its sources, `: `-joined, without the URL reqwest adds.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        let text = e.to_string();
        let text = match text.find(" for url (") {
            Some(i) => text[..i].to_owned(),
            None => text,
        };
        if !parts.contains(&text) {
            parts.push(text);
        }
        cur = e.source();
    }
    parts.join(": ")
}
