//! What the journal keeps: one [`RecordedRequest`] per webhook request, and the
//! [`Delivery`] view that groups them by body digest (X5).
//!
//! Inside the receiver a request is kept lean, as a [`Record`]: the few fields the
//! receiver itself looks at, plus the request's journal line, rendered once (the same
//! bytes go to the journal file and to `GET /_mock/requests`). The public
//! [`RecordedRequest`] is built from it only when someone reads the journal.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use hookjar_core::Digest;
use hookjar_core::payload::format_timestamp;
use serde::{Deserialize, Serialize, Serializer};
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
    group(requests)
}

/// What grouping needs from a request (a [`RecordedRequest`] or a lean [`Record`]).
trait Groupable {
    fn key(&self) -> (&str, Digest);
    fn event_type(&self) -> Option<&str>;
    fn arrived(&self) -> Instant;
    fn attempt_view(&self) -> Attempt;
}

impl Groupable for &RecordedRequest {
    fn key(&self) -> (&str, Digest) {
        (self.path_only(), self.digest)
    }
    fn event_type(&self) -> Option<&str> {
        self.event_type.as_deref()
    }
    fn arrived(&self) -> Instant {
        self.arrived
    }
    fn attempt_view(&self) -> Attempt {
        Attempt {
            seq: self.seq,
            attempt: self.attempt,
            path: self.path.clone(),
            arrived: self.arrived,
            since_start: self.since_start,
            received_at: self.received_at,
            step: self.step.clone(),
            status: self.status,
        }
    }
}

impl Groupable for &Record {
    fn key(&self) -> (&str, Digest) {
        (self.path_only(), self.digest)
    }
    fn event_type(&self) -> Option<&str> {
        self.event_type.as_deref()
    }
    fn arrived(&self) -> Instant {
        self.arrived
    }
    fn attempt_view(&self) -> Attempt {
        Attempt {
            seq: self.seq,
            attempt: self.attempt,
            path: self.path.to_string(),
            arrived: self.arrived,
            since_start: self.since_start,
            received_at: self.received_at,
            step: self.step.to_string(),
            status: self.status,
        }
    }
}

fn group<R: Groupable>(requests: impl IntoIterator<Item = R>) -> Vec<Delivery> {
    let mut index: HashMap<(String, Digest), usize> = HashMap::new();
    let mut out: Vec<Delivery> = Vec::new();
    for r in requests {
        let (path, digest) = r.key();
        let i = *index.entry((path.to_owned(), digest)).or_insert_with(|| {
            out.push(Delivery {
                digest,
                event_type: r.event_type().map(str::to_owned),
                attempts: Vec::new(),
                gaps: Vec::new(),
            });
            out.len() - 1
        });
        let d = &mut out[i];
        if let Some(prev) = d.attempts.last() {
            d.gaps
                .push(r.arrived().saturating_duration_since(prev.arrived));
        }
        d.attempts.push(r.attempt_view());
    }
    out
}

/// Groups lean records (see [`group_deliveries`]).
pub(crate) fn group_records<'a>(records: impl IntoIterator<Item = &'a Record>) -> Vec<Delivery> {
    group(records)
}

/// One request as the receiver keeps it: what it needs to decide, filter and group,
/// and the request's journal line (one JSON object, no newline), rendered once.
#[derive(Debug)]
pub(crate) struct Record {
    pub seq: u64,
    pub arrived: Instant,
    pub since_start: Duration,
    pub received_at: OffsetDateTime,
    /// Path and query, copied out of the connection's buffer.
    pub path: Box<str>,
    pub event_type: Option<Name>,
    pub digest: Digest,
    pub attempt: u32,
    pub script: Arc<str>,
    pub step: Arc<str>,
    pub status: Option<u16>,
    pub violations: Vec<String>,
    /// The journal line: [`RecordedRequest`]'s JSON form, keys in the same order.
    pub line: Box<[u8]>,
}

/// A name that is usually one of a few known texts (event types): no allocation then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Name {
    Static(&'static str),
    Owned(Box<str>),
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            Name::Static(s) => s,
            Name::Owned(s) => s,
        }
    }
}

/// The parts of a journal line that the lean [`Record`] does not keep apart.
#[derive(Deserialize)]
struct LineParts {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
    json: Option<Value>,
}

impl Record {
    /// The path without its query.
    pub fn path_only(&self) -> &str {
        self.path.split('?').next().unwrap_or_default()
    }

    /// The public form, rebuilt from the journal line.
    pub fn to_public(&self) -> RecordedRequest {
        let parts: LineParts =
            serde_json::from_slice(&self.line).expect("a journal line the receiver rendered");
        RecordedRequest {
            seq: self.seq,
            arrived: self.arrived,
            since_start: self.since_start,
            received_at: self.received_at,
            method: parts.method,
            path: parts.path,
            headers: parts.headers,
            body: parts.body,
            json: parts.json,
            event_type: self.event_type.as_deref().map(str::to_owned),
            digest: self.digest,
            attempt: self.attempt,
            script: self.script.to_string(),
            step: self.step.to_string(),
            status: self.status,
            violations: self.violations.clone(),
        }
    }
}

/// Clones shared records out of the journal, in their public form.
pub(crate) fn owned<'a>(
    records: impl IntoIterator<Item = &'a Arc<Record>>,
) -> Vec<RecordedRequest> {
    records.into_iter().map(|r| r.to_public()).collect()
}

/// What a journal line says about the request itself, known before the decision.
#[derive(Debug)]
pub(crate) struct LineHead<'a> {
    pub since_start: Duration,
    pub received_at: OffsetDateTime,
    pub method: &'a str,
    pub path: &'a str,
    pub headers: &'a http::HeaderMap,
    pub body: &'a [u8],
    /// The body is UTF-8 text and one valid JSON value: embedded as it is under `json`.
    pub body_is_json: bool,
    pub event_type: Option<&'a str>,
    /// The digest's 16 hex digits.
    pub digest_hex: [u8; 16],
}

/// A digest's 16 hex digits (lowercase, as its `Display`), without the formatting
/// machinery.
pub(crate) fn digest_hex(d: Digest) -> [u8; 16] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 16];
    for (i, b) in d.as_bytes().iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 0xf)];
    }
    out
}

/// The deepest JSON body embedded as it is under a journal line's `json`: the line
/// adds one level, and serde_json reads at most 128 (a deeper body is journaled as
/// text only, with `json: null`).
pub const MAX_EMBEDDED_DEPTH: usize = 126;

/// Whether JSON `body` nests at most [`MAX_EMBEDDED_DEPTH`] arrays and objects deep.
/// Almost every body has fewer brackets than that in all, which one count shows;
/// only the others are walked.
pub(crate) fn embeddable_depth(body: &[u8]) -> bool {
    let opening = body.iter().filter(|&&b| b == b'[' || b == b'{').count();
    if opening <= MAX_EMBEDDED_DEPTH {
        return true;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in body {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_EMBEDDED_DEPTH {
                    return false;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    true
}

/// What the decision adds to a journal line.
#[derive(Debug)]
pub(crate) struct LineTail<'a> {
    pub seq: u64,
    pub attempt: u32,
    pub script: &'a str,
    pub step: &'a str,
    pub status: Option<u16>,
    pub violations: &'a [String],
}

/// Writes `s` as a JSON string, byte for byte as `serde_json` does (the proptest
/// `json_str_matches_serde_json` holds it to that), but faster on long texts such as
/// a `body`: runs that need no escape are found eight bytes at a time.
pub(crate) fn json_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Find the next byte to escape: eight at a time, then one at a time.
        if let Some(chunk) = bytes.get(i..i + 8) {
            let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
            let hits = escape_mask(word);
            if hits == 0 {
                i += 8;
                continue;
            }
            i += (hits.trailing_zeros() / 8) as usize;
        } else if !needs_escape(bytes[i]) {
            i += 1;
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        write_escape(out, bytes[i]);
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// What JSON requires escaping: `"`, `\\` and the control characters below 0x20.
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// A mask whose lowest set bit marks the first byte of `word` (little-endian) that
/// [`needs_escape`]. Bits above it may be false alarms (a borrow carried over from a
/// real hit); only the lowest one is used.
fn escape_mask(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word;
    let quote = word ^ (ONES * u64::from(b'"'));
    let quote = quote.wrapping_sub(ONES) & !quote;
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let backslash = backslash.wrapping_sub(ONES) & !backslash;
    (below_space | quote | backslash) & HIGH
}

/// The escape of one byte that [`needs_escape`], as `serde_json` writes it.
fn write_escape(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match b {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        _ => out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(b >> 4)],
            HEX[usize::from(b & 0xf)],
        ]),
    }
}

/// Writes an integer without the formatting machinery.
fn write_int(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Renders one journal line (no newline) into `out`: the same keys, order and values
/// as [`RecordedRequest`]'s `Serialize`. A body that is valid JSON is embedded as it
/// is under `json` (line breaks, which JSON allows only as whitespace, are dropped),
/// not parsed and written again.
pub(crate) fn render_line(out: &mut Vec<u8>, head: &LineHead<'_>, tail: &LineTail<'_>) {
    out.extend_from_slice(b"{\"seq\":");
    write_int(out, tail.seq);
    out.extend_from_slice(b",\"since_start_ms\":");
    serde_json::to_writer(&mut *out, &ms(head.since_start)).expect("a number");
    out.extend_from_slice(b",\"received_at\":\"");
    write_timestamp(out, head.received_at);
    out.extend_from_slice(b"\",\"method\":");
    json_str(out, head.method);
    out.extend_from_slice(b",\"path\":");
    json_str(out, head.path);
    out.extend_from_slice(b",\"headers\":[");
    for (i, (k, v)) in head.headers.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'[');
        json_str(out, k.as_str());
        out.push(b',');
        match std::str::from_utf8(v.as_bytes()) {
            Ok(v) => json_str(out, v),
            Err(_) => json_str(out, &String::from_utf8_lossy(v.as_bytes())),
        }
        out.push(b']');
    }
    out.extend_from_slice(b"],\"body\":");
    match std::str::from_utf8(head.body) {
        Ok(text) => json_str(out, text),
        Err(_) => json_str(out, &String::from_utf8_lossy(head.body)),
    }
    out.extend_from_slice(b",\"json\":");
    if head.body_is_json {
        // `contains` on bytes is core's word-at-a-time memchr.
        if head.body.contains(&b'\n') || head.body.contains(&b'\r') {
            out.extend(head.body.iter().filter(|&&b| b != b'\n' && b != b'\r'));
        } else {
            out.extend_from_slice(head.body);
        }
    } else {
        out.extend_from_slice(b"null");
    }
    out.extend_from_slice(b",\"event_type\":");
    match head.event_type {
        Some(t) => json_str(out, t),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"digest\":\"");
    out.extend_from_slice(&head.digest_hex);
    out.extend_from_slice(b"\",\"attempt\":");
    write_int(out, tail.attempt);
    out.extend_from_slice(b",\"script\":");
    json_str(out, tail.script);
    out.extend_from_slice(b",\"step\":");
    json_str(out, tail.step);
    out.extend_from_slice(b",\"status\":");
    match tail.status {
        Some(s) => write_int(out, s),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"violations\":[");
    for (i, v) in tail.violations.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json_str(out, v);
    }
    out.extend_from_slice(b"]}");
}

/// `n` in `width` decimal digits, zero-padded (`width` ≤ 6).
fn digits(out: &mut Vec<u8>, mut n: u32, width: usize) {
    let mut buf = [b'0'; 6];
    for d in buf[..width].iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&buf[..width]);
}

/// [`format_timestamp`] without the format-description machinery
/// (`2026-11-27T09:30:00.123456+00:00`; the test `line_timestamps_match_format_timestamp`
/// holds it to that).
fn write_timestamp(out: &mut Vec<u8>, t: OffsetDateTime) {
    let t = t.to_offset(time::UtcOffset::UTC);
    let year = t.year();
    if !(0..=9999).contains(&year) {
        // Outside four digits: the general path (never for a real clock).
        out.extend_from_slice(format_timestamp(t).as_bytes());
        return;
    }
    digits(out, year as u32, 4);
    out.push(b'-');
    digits(out, u32::from(u8::from(t.month())), 2);
    out.push(b'-');
    digits(out, u32::from(t.day()), 2);
    out.push(b'T');
    digits(out, u32::from(t.hour()), 2);
    out.push(b':');
    digits(out, u32::from(t.minute()), 2);
    out.push(b':');
    digits(out, u32::from(t.second()), 2);
    out.push(b'.');
    digits(out, t.microsecond(), 6);
    out.extend_from_slice(b"+00:00");
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookjar_core::payload::format_timestamp;

    proptest::proptest! {
        /// A body is embedded exactly when its journal line (the body one level
        /// down) stays within what serde_json reads; brackets and escaped quotes
        /// inside strings do not count.
        #[test]
        fn embeddable_depth_is_what_a_line_can_hold(
            depth in 100usize..140,
            object_at in proptest::collection::vec(proptest::bool::ANY, 140),
            noise in "[\\[\\]{}\"a\\\\]{0,40}",
        ) {
            let mut body = String::new();
            for open in object_at.iter().take(depth) {
                body.push_str(if *open { "{\"k\":" } else { "[" });
            }
            body.push_str(&serde_json::to_string(&noise).unwrap());
            for open in object_at.iter().take(depth).rev() {
                body.push(if *open { '}' } else { ']' });
            }
            let line_parses = serde_json::from_str::<Value>(&format!("[{body}]")).is_ok();
            proptest::prop_assert_eq!(embeddable_depth(body.as_bytes()), line_parses, "{}", depth);
        }
    }

    proptest::proptest! {
        /// The journal's string escaping is serde_json's, byte for byte: any text,
        /// with quotes, backslashes, control characters and non-ASCII mixed in.
        #[test]
        fn json_str_matches_serde_json(
            s in proptest::string::string_regex("(?s).{0,80}").unwrap(),
            specials in proptest::collection::vec(
                proptest::sample::select(vec!['"', '\\', '\n', '\r', '\t', '\u{8}', '\u{c}', '\u{0}', '\u{1f}', '\u{7f}', 'é', '€', '😀']),
                0..12,
            ),
            at in proptest::collection::vec(0usize..81, 0..12),
        ) {
            let mut text: Vec<char> = s.chars().collect();
            for (c, i) in specials.into_iter().zip(at) {
                text.insert(i.min(text.len()), c);
            }
            let text: String = text.into_iter().collect();
            let mut ours = Vec::new();
            json_str(&mut ours, &text);
            proptest::prop_assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string(&text).unwrap()
            );
        }

        /// The journal's timestamps are S11's form, as `format_timestamp` writes it.
        #[test]
        fn line_timestamps_match_format_timestamp(
            secs in -62_135_596_800i64..253_402_300_799i64,
            micros in 0u32..1_000_000,
        ) {
            let t = OffsetDateTime::from_unix_timestamp(secs).unwrap()
                + time::Duration::microseconds(i64::from(micros));
            let mut ours = Vec::new();
            write_timestamp(&mut ours, t);
            proptest::prop_assert_eq!(String::from_utf8(ours).unwrap(), format_timestamp(t));
        }
    }

    #[test]
    fn digest_hex_is_the_digests_display() {
        for body in [&b""[..], b"{}", b"hookjar"] {
            let d = Digest::of(body);
            assert_eq!(std::str::from_utf8(&digest_hex(d)).unwrap(), d.to_string());
        }
    }
}
