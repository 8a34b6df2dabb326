//! What an attempt's outcome means (S14–S18): delivered, retry later, or deactivate.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::retry::RetryPolicy;

/// Why a webhook was deactivated: the `deactivate_reason` codes of Skilljar's schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DeactivateReason {
    /// Any 4xx answer (S16).
    #[serde(rename = "HTTP_4XX_RESPONSE")]
    Http4xxResponse,
    /// The last retry failed too (S15).
    #[serde(rename = "RETRY_COUNT")]
    RetryCount,
    /// More redirects than the client follows (S18).
    #[serde(rename = "TOO_MANY_REDIRECTS")]
    TooManyRedirects,
    /// Organisation-level shut-off; set only by an admin action (S18).
    #[serde(rename = "ORG_DISABLED")]
    OrgDisabled,
}

impl DeactivateReason {
    /// Every code.
    pub const ALL: [DeactivateReason; 4] = [
        DeactivateReason::Http4xxResponse,
        DeactivateReason::RetryCount,
        DeactivateReason::TooManyRedirects,
        DeactivateReason::OrgDisabled,
    ];

    /// The wire code, e.g. `RETRY_COUNT`.
    pub const fn as_str(self) -> &'static str {
        match self {
            DeactivateReason::Http4xxResponse => "HTTP_4XX_RESPONSE",
            DeactivateReason::RetryCount => "RETRY_COUNT",
            DeactivateReason::TooManyRedirects => "TOO_MANY_REDIRECTS",
            DeactivateReason::OrgDisabled => "ORG_DISABLED",
        }
    }

    /// Parses a wire code.
    pub fn from_code(code: &str) -> Option<Self> {
        DeactivateReason::ALL
            .into_iter()
            .find(|r| r.as_str() == code)
    }
}

impl fmt::Display for DeactivateReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a transport-level failure happened (no HTTP status was received).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportKind {
    /// The connection could not be made (refused, unreachable, DNS).
    Connect,
    /// No answer within the timeout.
    Timeout,
    /// The connection was closed or reset before a full answer.
    Reset,
    /// TLS handshake or certificate failure.
    Tls,
    /// The peer answered something that is not HTTP.
    Protocol,
    /// Anything else.
    Other,
}

impl TransportKind {
    /// In words, with its article, e.g. `a connection failure`.
    pub const fn describe(self) -> &'static str {
        match self {
            TransportKind::Connect => "a connection failure",
            TransportKind::Timeout => "a timeout",
            TransportKind::Reset => "a reset connection",
            TransportKind::Tls => "a TLS failure",
            TransportKind::Protocol => "an answer that is not HTTP",
            TransportKind::Other => "a transport error",
        }
    }

    /// A short label, e.g. `connect`.
    pub const fn as_str(self) -> &'static str {
        match self {
            TransportKind::Connect => "connect",
            TransportKind::Timeout => "timeout",
            TransportKind::Reset => "reset",
            TransportKind::Tls => "tls",
            TransportKind::Protocol => "protocol",
            TransportKind::Other => "error",
        }
    }
}

/// What one POST came to, as seen by the sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// An HTTP answer with this status (after following redirects).
    Status { code: u16 },
    /// The redirect limit was passed (S18).
    TooManyRedirects { hops: u32 },
    /// No HTTP answer at all.
    Transport {
        error: TransportKind,
        detail: String,
    },
}

impl Outcome {
    /// An HTTP status outcome.
    pub fn status(code: u16) -> Self {
        Outcome::Status { code }
    }

    /// A transport failure outcome.
    pub fn transport(error: TransportKind, detail: impl Into<String>) -> Self {
        Outcome::Transport {
            error,
            detail: detail.into(),
        }
    }

    /// The status code, if there was one.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            Outcome::Status { code } => Some(*code),
            _ => None,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Status { code } => write!(f, "HTTP {code}"),
            Outcome::TooManyRedirects { hops } => write!(f, "too many redirects ({hops} hops)"),
            Outcome::Transport { error, detail } => write!(f, "{}: {detail}", error.as_str()),
        }
    }
}

/// What the dispatcher does next with a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// A 2xx: done; the answer's body is ignored (S17).
    Delivered,
    /// Try again after this wait (S14, S18).
    RetryAfter {
        #[serde(with = "secs_f64")]
        delay: Duration,
    },
    /// Deactivate the webhook (S15, S16, S18); nothing more is sent to it.
    Deactivate { reason: DeactivateReason },
}

impl Verdict {
    /// A short label: `delivered`, `retry` or `deactivate`.
    pub const fn label(&self) -> &'static str {
        match self {
            Verdict::Delivered => "delivered",
            Verdict::RetryAfter { .. } => "retry",
            Verdict::Deactivate { .. } => "deactivate",
        }
    }
}

impl RetryPolicy {
    /// The verdict for `outcome` on `attempt` (0 = first POST, n = n-th retry).
    ///
    /// - 2xx → [`Verdict::Delivered`] (S17);
    /// - 4xx → deactivate with `HTTP_4XX_RESPONSE`, at once (S16);
    /// - too many redirects → deactivate with `TOO_MANY_REDIRECTS` (S18);
    /// - anything else (5xx, 1xx, 3xx, unknown codes, transport errors) → retry after
    ///   the policy's next delay (S14, S18), or deactivate with `RETRY_COUNT` when
    ///   `attempt` was the last retry (S15).
    pub fn classify(&self, outcome: &Outcome, attempt: u32) -> Verdict {
        match outcome {
            Outcome::Status { code } if (200..300).contains(code) => Verdict::Delivered,
            Outcome::Status { code } if (400..500).contains(code) => Verdict::Deactivate {
                reason: DeactivateReason::Http4xxResponse,
            },
            Outcome::TooManyRedirects { .. } => Verdict::Deactivate {
                reason: DeactivateReason::TooManyRedirects,
            },
            _ => match attempt
                .checked_add(1)
                .and_then(|n| self.delay_before_retry(n))
            {
                Some(delay) => Verdict::RetryAfter { delay },
                None => Verdict::Deactivate {
                    reason: DeactivateReason::RetryCount,
                },
            },
        }
    }

    /// A line for the delivery log: what happened on which attempt, and what follows,
    /// e.g. `HTTP 503 on retry 60; deactivated (RETRY_COUNT)`.
    pub fn describe(&self, outcome: &Outcome, attempt: u32) -> String {
        let when = attempt_name(attempt);
        let next = match self.classify(outcome, attempt) {
            Verdict::Delivered => "delivered".to_owned(),
            Verdict::RetryAfter { delay } => {
                format!("retry {} in {}", attempt + 1, human_duration(delay))
            }
            Verdict::Deactivate { reason } => format!("deactivated ({reason})"),
        };
        format!("{outcome} on {when}; {next}")
    }

    /// What Skilljar would do if an endpoint answered `status` to a first delivery,
    /// in an integrator's words (used by `hookjar check` and `hookjar send`).
    pub fn explain_status(&self, status: u16) -> String {
        match self.classify(&Outcome::status(status), 0) {
            Verdict::Delivered => format!("a {status} is a success: the event is delivered (S17)"),
            Verdict::Deactivate { .. } => format!(
                "a {status} here would deactivate your webhook at once (S16, HTTP_4XX_RESPONSE)"
            ),
            Verdict::RetryAfter { .. } => {
                let kind = if (500..600).contains(&status) {
                    format!("a {status}")
                } else {
                    format!("a {status} (neither 2xx, 4xx nor 5xx)")
                };
                format!(
                    "{kind} would be retried until a 2xx, at most {} times over ~{}; if every retry failed, your webhook would be deactivated (S14, S15, RETRY_COUNT)",
                    self.max_retries,
                    human_duration(self.total())
                )
            }
        }
    }

    /// The same as [`RetryPolicy::explain_status`] for any outcome.
    pub fn explain(&self, outcome: &Outcome) -> String {
        match outcome {
            Outcome::Status { code } => self.explain_status(*code),
            Outcome::TooManyRedirects { .. } => {
                "too many redirects would deactivate your webhook at once (S18, TOO_MANY_REDIRECTS)"
                    .to_owned()
            }
            Outcome::Transport { error, .. } => format!(
                "{} would be retried until a 2xx, at most {} times over ~{}; if every retry failed, your webhook would be deactivated (S18, S15, RETRY_COUNT)",
                error.describe(),
                self.max_retries,
                human_duration(self.total())
            ),
        }
    }
}

/// What a ping's answer means (S13): whether it succeeded (a 2xx) and the message
/// of the API's ping answer. A ping is never retried and never deactivates; a 2xx
/// reached only through a 301/302/303 redirect (a bodiless GET, S18) still counts,
/// but the message says that events sent this way are lost.
pub fn ping_answer(outcome: &Outcome, downgraded: Option<u16>) -> (bool, String) {
    let succeeded = matches!(outcome, Outcome::Status { code } if (200..300).contains(code));
    let message = if let Some(code) = downgraded {
        format!(
            "Ping answered {outcome} only after a {code} redirect turned the POST into a GET without the body: events sent this way are lost. Answer at the final URL, or redirect with 307/308."
        )
    } else if succeeded {
        format!("Ping delivered ({outcome}).")
    } else {
        format!(
            "Ping failed: {outcome}. A ping is never retried and never deactivates the webhook."
        )
    };
    (succeeded, message)
}

/// `first attempt` or `retry N`.
pub fn attempt_name(attempt: u32) -> String {
    if attempt == 0 {
        "first attempt".to_owned()
    } else {
        format!("retry {attempt}")
    }
}

/// A compact human duration: `2s`, `1.5s`, `34m8s`, `1h`, `50.1h`.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if d.subsec_nanos() != 0 && secs < 60 {
        let ms = d.as_millis();
        return if ms < 1000 {
            format!("{ms}ms")
        } else {
            format!("{:.1}s", d.as_secs_f64())
        };
    }
    if secs < 60 {
        format!("{secs}s")
    } else if secs < 3600 {
        let (m, s) = (secs / 60, secs % 60);
        if s == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{s}s")
        }
    } else if secs % 3600 == 0 {
        format!("{}h", secs / 3600)
    } else {
        format!("{:.1}h", d.as_secs_f64() / 3600.0)
    }
}

mod secs_f64 {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        if d.subsec_nanos() == 0 {
            s.serialize_u64(d.as_secs())
        } else {
            s.serialize_f64(d.as_secs_f64())
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let p = RetryPolicy::default();
        let retry = |s| Verdict::RetryAfter {
            delay: Duration::from_secs(s),
        };
        assert_eq!(p.classify(&Outcome::status(200), 0), Verdict::Delivered);
        assert_eq!(p.classify(&Outcome::status(204), 60), Verdict::Delivered);
        assert_eq!(
            p.classify(&Outcome::status(404), 0),
            Verdict::Deactivate {
                reason: DeactivateReason::Http4xxResponse
            }
        );
        assert_eq!(p.classify(&Outcome::status(503), 0), retry(2));
        assert_eq!(p.classify(&Outcome::status(503), 1), retry(4));
        assert_eq!(p.classify(&Outcome::status(503), 59), retry(3600));
        assert_eq!(
            p.classify(&Outcome::status(503), 60),
            Verdict::Deactivate {
                reason: DeactivateReason::RetryCount
            }
        );
        assert_eq!(
            p.classify(&Outcome::transport(TransportKind::Timeout, "10s"), 3),
            retry(16)
        );
        assert_eq!(
            p.classify(&Outcome::TooManyRedirects { hops: 11 }, 0),
            Verdict::Deactivate {
                reason: DeactivateReason::TooManyRedirects
            }
        );
    }

    #[test]
    fn descriptions() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.describe(&Outcome::status(503), 60),
            "HTTP 503 on retry 60; deactivated (RETRY_COUNT)"
        );
        assert_eq!(
            p.describe(&Outcome::status(503), 0),
            "HTTP 503 on first attempt; retry 1 in 2s"
        );
        assert_eq!(
            p.describe(
                &Outcome::transport(TransportKind::Connect, "connection refused"),
                2
            ),
            "connect: connection refused on retry 2; retry 3 in 8s"
        );
        assert_eq!(
            p.explain_status(404),
            "a 404 here would deactivate your webhook at once (S16, HTTP_4XX_RESPONSE)"
        );
        assert_eq!(
            p.explain(&Outcome::transport(TransportKind::Other, "x")),
            "a transport error would be retried until a 2xx, at most 60 times over ~50.1h; if every retry failed, your webhook would be deactivated (S18, S15, RETRY_COUNT)"
        );
        assert_eq!(
            p.explain_status(503),
            "a 503 would be retried until a 2xx, at most 60 times over ~50.1h; if every retry failed, your webhook would be deactivated (S14, S15, RETRY_COUNT)"
        );
    }

    #[test]
    fn human_durations() {
        assert_eq!(human_duration(Duration::from_secs(2)), "2s");
        assert_eq!(human_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(human_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(human_duration(Duration::from_secs(2048)), "34m8s");
        assert_eq!(human_duration(Duration::from_secs(3600)), "1h");
        assert_eq!(human_duration(Duration::from_secs(180_494)), "50.1h");
    }
}
