//! What the journal keeps: one [`RecordedRequest`] per webhook request, and the
//! [`Delivery`] view that groups them by body digest (X5).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use hookjar_core::Digest;
use hookjar_core::payload::format_timestamp;
use serde::{Serialize, Serializer};
use serde_json::Value;
use time::OffsetDateTime;
use tokio::time::Instant;

/// The wall clock the receiver stamps requests with. Tests inject a fixed one; the
/// server defaults to [`SystemClock`].
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant, UTC.
    fn now_utc(&self) -> OffsetDateTime;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_utc(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that always reads the same instant (for snapshots).
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub OffsetDateTime);

impl Clock for FixedClock {
    fn now_utc(&self) -> OffsetDateTime {
        self.0
    }
}

/// One webhook request as the receiver saw it, and what it answered.
///
/// Its JSON form (one line of the journal file, one element of
/// `GET /_mock/requests`) has the same keys, with `since_start_ms` for the monotonic
/// arrival time and `received_at` in S11's timestamp form.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordedRequest {
    /// 1-based arrival number; never reused, even after a clear.
    pub seq: u64,
    /// Monotonic arrival (tokio's clock: exact on a paused clock). Not serialised.
    #[serde(skip)]
    pub arrived: Instant,
    /// Arrival as an offset from the receiver's start.
    #[serde(rename = "since_start_ms", serialize_with = "ser_ms")]
    pub since_start: Duration,
    /// Wall-clock arrival, from the receiver's [`Clock`].
    #[serde(serialize_with = "ser_ts")]
    pub received_at: OffsetDateTime,
    /// `POST`, normally (S7).
    pub method: String,
    /// Path and query, as requested.
    pub path: String,
    /// Every header in arrival order, names lowercase.
    pub headers: Vec<(String, String)>,
    /// The body as text (invalid UTF-8 replaced by U+FFFD).
    pub body: String,
    /// The body parsed as JSON, when it is JSON.
    pub json: Option<Value>,
    /// The payload's `event_type`, when it has one.
    pub event_type: Option<String>,
    /// The body digest that correlates the attempts of one delivery (X5).
    pub digest: Digest,
    /// 0 for the first request with this digest, 1 for the first retry, …
    pub attempt: u32,
    /// Which script answered: `default`, `route /a`, `for_type COURSE_COMPLETION`,
    /// or `auth` when the request was refused with 401.
    pub script: String,
    /// The step that answered, e.g. `503`, `200@1500ms`, `reset`, `redirect=/b`.
    pub step: String,
    /// The HTTP status sent, if one was (none for `reset`, `hang`, `garbage`).
    pub status: Option<u16>,
    /// Each way the request departs from S7–S11 or the expectations, naming its
    /// clause: `S7 user-agent: expected "skilljar", got "curl/8"`.
    pub violations: Vec<String>,
}

fn ser_ms<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(ms(*d))
}

fn ser_ms_vec<S: Serializer>(ds: &[Duration], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(ds.iter().map(|d| ms(*d)))
}

fn ser_ts<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_timestamp(*t))
}

/// Milliseconds with microsecond precision.
fn ms(d: Duration) -> f64 {
    (d.as_micros() as f64) / 1000.0
}

impl RecordedRequest {
    /// The first value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The path without its query.
    pub fn path_only(&self) -> &str {
        self.path.split('?').next().unwrap_or_default()
    }

    /// `#3 POST /a COURSE_COMPLETION attempt 1 → 503`, for lists in messages.
    pub fn summary(&self) -> String {
        format!(
            "#{} {} {} {} attempt {} → {}",
            self.seq,
            self.method,
            self.path,
            self.event_type.as_deref().unwrap_or("-"),
            self.attempt,
            self.step
        )
    }

    /// The console line `hookjar mock` prints: time, path, event type, digest,
    /// attempt, answer, violations.
    pub fn console_line(&self) -> String {
        let t = self.received_at;
        let mut line = format!(
            "{:02}:{:02}:{:02}.{:03} #{:<4} {} {} {} {} attempt {} → {}",
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond(),
            self.seq,
            self.method,
            self.path,
            self.event_type.as_deref().unwrap_or("-"),
            self.digest,
            self.attempt,
            self.step,
        );
        if self.script != "default" {
            line.push_str(&format!(" ({})", self.script));
        }
        for v in &self.violations {
            line.push_str(&format!("\n    ! {v}"));
        }
        line
    }
}

/// One attempt of a [`Delivery`]: a compact view of a [`RecordedRequest`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    /// The request's `seq`.
    pub seq: u64,
    /// 0 for the first POST, n for the n-th retry.
    pub attempt: u32,
    /// Path and query.
    pub path: String,
    /// Monotonic arrival. Not serialised.
    #[serde(skip)]
    pub arrived: Instant,
    /// Arrival as an offset from the receiver's start.
    #[serde(rename = "since_start_ms", serialize_with = "ser_ms")]
    pub since_start: Duration,
    /// Wall-clock arrival.
    #[serde(serialize_with = "ser_ts")]
    pub received_at: OffsetDateTime,
    /// The step that answered.
    pub step: String,
    /// The status sent, if any.
    pub status: Option<u16>,
}

/// The requests of one delivery — one body digest (X5) at one path: one event's first
/// POST to that URL and its retries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    /// The body digest (X5).
    pub digest: Digest,
    /// The payload's `event_type`, when it has one.
    pub event_type: Option<String>,
    /// Every attempt, in arrival order.
    pub attempts: Vec<Attempt>,
    /// The waits between consecutive attempts (one fewer than the attempts) on the
    /// monotonic clock: the raw material for back-off checks (S14).
    #[serde(rename = "gaps_ms", serialize_with = "ser_ms_vec")]
    pub gaps: Vec<Duration>,
}

/// Groups requests by (path without query, digest), in order of each delivery's first
/// request.
pub fn group_deliveries<'a>(
    requests: impl IntoIterator<Item = &'a RecordedRequest>,
) -> Vec<Delivery> {
    let mut index: HashMap<(&str, Digest), usize> = HashMap::new();
    let mut out: Vec<Delivery> = Vec::new();
    for r in requests {
        let i = *index.entry((r.path_only(), r.digest)).or_insert_with(|| {
            out.push(Delivery {
                digest: r.digest,
                event_type: r.event_type.clone(),
                attempts: Vec::new(),
                gaps: Vec::new(),
            });
            out.len() - 1
        });
        let d = &mut out[i];
        if let Some(prev) = d.attempts.last() {
            d.gaps
                .push(r.arrived.saturating_duration_since(prev.arrived));
        }
        d.attempts.push(Attempt {
            seq: r.seq,
            attempt: r.attempt,
            path: r.path.clone(),
            arrived: r.arrived,
            since_start: r.since_start,
            received_at: r.received_at,
            step: r.step.clone(),
            status: r.status,
        });
    }
    out
}

/// Clones shared records out of the journal.
pub(crate) fn owned(records: &[Arc<RecordedRequest>]) -> Vec<RecordedRequest> {
    records.iter().map(|r| (**r).clone()).collect()
}
