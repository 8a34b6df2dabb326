//! The receiver's decisions, synchronous and free of I/O.
//!
//! A request goes through two steps:
//! 1. [`Inspected::new`] — without any lock: check S7–S11 and the [`Expectations`] on a
//!    borrowed view of the body (no JSON tree is built for a well-formed payload),
//!    compute the digest.
//! 2. [`State::decide`] — under the receiver's lock, briefly: pick the script, take
//!    its next step, count the attempt, render the journal line, push the record
//!    into the in-memory ring (evicting the oldest when full: O(1)), return a [`Plan`].
//!
//! The I/O layer then performs the plan (waits, answers, faults) after the lock is
//! released. Time is passed in, never read.
//!
//! Memory is bounded: the ring keeps the last `keep` records, at most `keep_bytes` of
//! journal lines (always the newest record, whatever its size), and attempt numbers and
//! script positions are kept for the [`tracked_deliveries`] most recently seen
//! deliveries (least recently seen forgotten first).

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hashlink::LruCache;
use hookjar_core::payload::{PING, inspect_body, parse_timestamp};
use hookjar_core::request::{CONTENT_TYPE, USER_AGENT, decode_basic_auth};
use hookjar_core::script::{Action, Script, Step};
use hookjar_core::{Digest, EventType};
use http::{HeaderMap, Method};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::config::{Expectations, Per, Scripts};
use crate::record::{LineHead, LineTail, Name, Record, digest_hex, embeddable_depth, render_line};

/// How many records the in-memory journal keeps by default (`--keep`).
pub const DEFAULT_KEEP: usize = 10_000;

/// How many bytes of journal lines the in-memory journal keeps by default
/// (`--keep-mib`): 64 MiB. A record costs about twice its body (the line holds the
/// body as text and as JSON), so bodies near the 8 MiB limit would otherwise let
/// 10,000 records grow past 100 GB.
pub const DEFAULT_KEEP_BYTES: usize = 64 << 20;

/// The fewest deliveries whose attempt numbers and script positions are kept.
pub const MIN_TRACKED_DELIVERIES: usize = 100_000;

/// How many deliveries' attempt numbers and script positions a receiver keeping
/// `keep` records tracks: `max(keep, 100,000)`.
pub fn tracked_deliveries(keep: usize) -> usize {
    keep.max(MIN_TRACKED_DELIVERIES)
}

/// A webhook request as it arrived, before any check.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// The method.
    pub method: Method,
    /// Path and query.
    pub path: String,
    /// Headers in arrival order (names lowercase), as hyper parsed them.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
    /// Monotonic arrival.
    pub arrived: Instant,
    /// Arrival as an offset from the receiver's start.
    pub since_start: Duration,
    /// Wall-clock arrival.
    pub received_at: OffsetDateTime,
}

/// A request after the checks that need no shared state.
#[derive(Debug, Clone)]
pub struct Inspected {
    incoming: Incoming,
    body_is_json: bool,
    event_type: Option<Name>,
    digest: Digest,
    violations: Vec<String>,
    refused: bool,
}

/// The first value of a header, as text (invalid UTF-8 replaced).
fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<Cow<'h, str>> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()))
}

impl Inspected {
    /// Lists every violation of S7–S11 and of `expect`.
    pub fn new(incoming: Incoming, expect: &Expectations) -> Self {
        let mut violations = Vec::new();
        let headers = &incoming.headers;
        if incoming.method != Method::POST {
            violations.push(format!("S7 method: expected POST, got {}", incoming.method));
        }
        match headers.get(http::header::CONTENT_TYPE) {
            Some(v) if trim_ascii(v.as_bytes()).eq_ignore_ascii_case(CONTENT_TYPE.as_bytes()) => {}
            Some(v) => violations.push(format!(
                "S7 content-type: expected {CONTENT_TYPE:?}, got {:?}",
                String::from_utf8_lossy(v.as_bytes())
            )),
            None => violations.push(format!(
                "S7 content-type: expected {CONTENT_TYPE:?}, got nothing"
            )),
        }
        match headers.get(http::header::USER_AGENT) {
            Some(v) if v.as_bytes() == USER_AGENT.as_bytes() => {}
            Some(v) => violations.push(format!(
                "S7 user-agent: expected {USER_AGENT:?}, got {:?}",
                String::from_utf8_lossy(v.as_bytes())
            )),
            None => violations.push(format!(
                "S7 user-agent: expected {USER_AGENT:?}, got nothing"
            )),
        }
        // A well-formed payload is checked on a borrowed view; anything else goes
        // through the full check, which words each problem.
        let (body_is_json, event_type) = match quick_body(&incoming.body) {
            Some(t) => (true, Some(t)),
            None => {
                let report = inspect_body(&incoming.body);
                violations.extend(report.problems);
                (
                    report.json.is_some(),
                    report.event_type.map(|t| Name::Owned(t.into_boxed_str())),
                )
            }
        };
        // Embedded under `json`, the body sits one level down in its journal line,
        // which must stay readable by serde_json (and so by the journal's readers).
        let body_is_json = body_is_json && embeddable_depth(&incoming.body);

        let mut refused = false;
        if let Some((user, pass)) = &expect.basic_auth {
            match header(headers, "authorization") {
                None => violations
                    .push("auth: missing Authorization (S8 expects Basic credentials)".to_owned()),
                Some(v) => match decode_basic_auth(&v) {
                    None => violations.push(format!(
                        "auth: Authorization is not Basic credentials (got {:?})",
                        v.split_whitespace().next().unwrap_or_default()
                    )),
                    Some((u, p)) if &u == user && &p == pass => {}
                    Some((u, _)) if &u != user => {
                        violations.push(format!(
                            "auth: wrong username: expected {user:?}, got {u:?}"
                        ));
                    }
                    Some(_) => violations.push(format!("auth: wrong password for user {user:?}")),
                },
            }
            refused = violations.iter().any(|v| v.starts_with("auth:"));
        }
        for (name, want) in &expect.require_headers {
            match header(headers, name) {
                Some(v) if v == want.as_str() => {}
                Some(v) => {
                    refused = true;
                    violations.push(format!("S9 header {name}: expected {want:?}, got {v:?}"));
                }
                None => {
                    refused = true;
                    violations.push(format!("S9 header {name}: missing (expected {want:?})"));
                }
            }
        }
        Inspected {
            digest: Digest::of(&incoming.body),
            body_is_json,
            event_type,
            incoming,
            violations,
            refused,
        }
    }

    /// The body digest.
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// The violations found so far.
    pub fn violations(&self) -> &[String] {
        &self.violations
    }
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    b.trim_ascii()
}

/// The happy path of the body checks (S7 one JSON object, S10/S11 `event_type`, S11
/// `timestamp`) on a borrowed view: `Some(event_type)` when the body passes them all,
/// `None` when anything is off (then [`inspect_body`] words the problems).
pub(crate) fn quick_body(body: &[u8]) -> Option<Name> {
    // serde_json does not check UTF-8 inside strings it skips; the full check does.
    std::str::from_utf8(body).ok()?;
    let view: View<'_> = serde_json::from_slice(body).ok()?;
    if !view.ok {
        return None;
    }
    parse_timestamp(view.timestamp?).ok()?;
    let t = view.event_type?;
    if t == PING {
        return Some(Name::Static(PING));
    }
    EventType::ALL
        .into_iter()
        .map(EventType::as_str)
        .find(|name| *name == t)
        .map(Name::Static)
}

/// A payload's two checked keys, borrowed; `ok` is false when either is not a plain
/// string or appears twice.
struct View<'a> {
    event_type: Option<&'a str>,
    timestamp: Option<&'a str>,
    ok: bool,
}

impl<'de> serde::Deserialize<'de> for View<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = View<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("one JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<View<'de>, A::Error> {
                let mut view = View {
                    event_type: None,
                    timestamp: None,
                    ok: true,
                };
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    let slot = match key.as_ref() {
                        "event_type" => &mut view.event_type,
                        "timestamp" => &mut view.timestamp,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    let value = map.next_value::<Plain<'de>>()?;
                    match (value.0, slot.is_none()) {
                        (Some(s), true) => *slot = Some(s),
                        _ => view.ok = false,
                    }
                }
                Ok(view)
            }
        }
        d.deserialize_map(V)
    }
}

/// A JSON value that is `Some` when it is a string without escapes.
struct Plain<'a>(Option<&'a str>);

impl<'de> serde::Deserialize<'de> for Plain<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Plain<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Plain<'de>, E> {
                Ok(Plain(Some(v)))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Plain<'de>, E> {
                Ok(Plain(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Plain<'de>, E> {
                Ok(Plain(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Plain<'de>, E> {
                Ok(Plain(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Plain<'de>, E> {
                Ok(Plain(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Plain<'de>, E> {
                Ok(Plain(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Plain<'de>, E> {
                Ok(Plain(None))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Plain<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Plain(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Plain<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Plain(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// What the I/O layer must do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Wait this long first (on tokio's clock).
    pub delay: Duration,
    /// Then do this.
    pub answer: Answer,
}

/// How the receiver answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// An HTTP answer with this status, a JSON body and extra headers.
    Status {
        code: u16,
        headers: Vec<(&'static str, String)>,
        body: String,
    },
    /// Close the connection with a TCP reset.
    Reset,
    /// Never answer.
    Hang,
    /// Write bytes that are not HTTP, then close.
    Garbage,
}

/// One step of a script, with its names rendered once.
#[derive(Debug)]
struct CompiledStep {
    step: Step,
    repeat: u64,
    name: Arc<str>,
    /// The name as a JSON string, quotes included.
    name_json: String,
}

/// A script with its name (`default`, `route /a`, `for_type T`) and steps rendered once.
#[derive(Debug)]
struct CompiledScript {
    name: Arc<str>,
    steps: Vec<CompiledStep>,
}

impl CompiledScript {
    fn new(name: String, script: &Script) -> Self {
        CompiledScript {
            name: name.into(),
            steps: script
                .steps()
                .iter()
                .map(|s| {
                    let single = s.single();
                    let text = single.to_string();
                    CompiledStep {
                        name_json: serde_json::to_string(&text).expect("a string"),
                        name: text.into(),
                        repeat: u64::from(s.repeat),
                        step: single,
                    }
                })
                .collect(),
        }
    }

    /// The step at `position` (the last step repeats forever).
    fn step_for(&self, position: u64) -> &CompiledStep {
        let mut left = position;
        for step in &self.steps {
            if left < step.repeat {
                return step;
            }
            left -= step.repeat;
        }
        self.steps.last().expect("a script has at least one step")
    }
}

/// The scripts in a form that answers without allocating: index 0 is the default.
#[derive(Debug)]
struct Compiled {
    scripts: Vec<CompiledScript>,
    routes: HashMap<String, usize>,
    types: HashMap<EventType, usize>,
}

impl Compiled {
    fn new(s: &Scripts) -> Self {
        let mut scripts = vec![CompiledScript::new("default".into(), &s.default)];
        let mut routes = HashMap::new();
        for (path, script) in &s.routes {
            routes.insert(path.clone(), scripts.len());
            scripts.push(CompiledScript::new(format!("route {path}"), script));
        }
        let mut types = HashMap::new();
        for (t, script) in &s.for_type {
            types.insert(*t, scripts.len());
            scripts.push(CompiledScript::new(format!("for_type {t}"), script));
        }
        Compiled {
            scripts,
            routes,
            types,
        }
    }

    /// The script that answers: the path's, else the event type's, else the default.
    fn pick(&self, path: &str, event_type: Option<&str>) -> usize {
        if let Some(&i) = self.routes.get(path) {
            return i;
        }
        if let Some(t) = event_type.and_then(|t| t.parse::<EventType>().ok()) {
            if let Some(&i) = self.types.get(&t) {
                return i;
            }
        }
        0
    }
}

/// One delivery (path without query, body digest), hashed to a fixed-size key.
type DeliveryKey = (u64, Digest);

/// What is kept per delivery.
#[derive(Debug, Clone, Copy, Default)]
struct DeliveryState {
    attempts: u32,
    position: u64,
    /// The scripts' generation `position` belongs to; a change of scripts restarts it.
    generation: u64,
}

/// How many records were received and evicted, for `/_mock/*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// The newest `seq` given (0 before the first request).
    pub latest_seq: u64,
    /// Requests recorded since the start or the last clear.
    pub received: u64,
    /// Records in memory now.
    pub kept: usize,
    /// Records dropped from memory to stay within `keep` (the journal file keeps them).
    pub evicted: u64,
    /// The most records kept in memory.
    pub keep: usize,
}

/// The receiver's mutable state: scripts, positions, attempt counts and the in-memory
/// journal (a ring of the last `keep` records).
#[derive(Debug)]
pub struct State {
    scripts: Scripts,
    compiled: Compiled,
    generation: u64,
    journal: VecDeque<Arc<Record>>,
    keep: usize,
    keep_bytes: usize,
    /// The journal lines' bytes in `journal`.
    kept_bytes: usize,
    received: u64,
    evicted: u64,
    deliveries: LruCache<DeliveryKey, DeliveryState>,
    per_request: HashMap<usize, u64>,
    next_seq: u64,
    auth_name: Arc<str>,
    auth_step: Arc<str>,
    line: Vec<u8>,
}

impl State {
    /// A fresh state answering with `scripts`, keeping [`DEFAULT_KEEP`] records.
    pub fn new(scripts: Scripts) -> Self {
        Self::with_keep(scripts, DEFAULT_KEEP)
    }

    /// A fresh state answering with `scripts`, keeping the last `keep` records in
    /// memory.
    pub fn with_keep(scripts: Scripts, keep: usize) -> Self {
        State {
            compiled: Compiled::new(&scripts),
            scripts,
            generation: 0,
            journal: VecDeque::with_capacity(keep.min(1 << 16)),
            keep,
            keep_bytes: DEFAULT_KEEP_BYTES,
            kept_bytes: 0,
            received: 0,
            evicted: 0,
            deliveries: LruCache::new(tracked_deliveries(keep)),
            per_request: HashMap::new(),
            next_seq: 1,
            auth_name: Arc::from("auth"),
            auth_step: Arc::from("401"),
            line: Vec::with_capacity(4096),
        }
    }

    /// Keeps at most `bytes` of journal lines in memory (the newest record always).
    pub fn keep_bytes(mut self, bytes: usize) -> Self {
        self.keep_bytes = bytes;
        self
    }

    /// The scripts in force.
    pub fn scripts(&self) -> &Scripts {
        &self.scripts
    }

    /// Replaces the scripts; every script starts again from its first step.
    pub fn set_scripts(&mut self, scripts: Scripts) {
        self.compiled = Compiled::new(&scripts);
        self.scripts = scripts;
        self.generation += 1;
        self.per_request.clear();
    }

    /// The records in memory, oldest first.
    #[cfg(test)]
    pub(crate) fn journal(&self) -> &VecDeque<Arc<Record>> {
        &self.journal
    }

    /// The records in memory with a `seq` after `seq`, oldest first.
    pub(crate) fn since(&self, seq: u64) -> impl Iterator<Item = &Arc<Record>> {
        let from = self.journal.partition_point(|r| r.seq <= seq);
        self.journal.range(from..)
    }

    /// Received, kept and evicted counts.
    pub fn counts(&self) -> Counts {
        Counts {
            latest_seq: self.next_seq - 1,
            received: self.received,
            kept: self.journal.len(),
            evicted: self.evicted,
            keep: self.keep,
        }
    }

    /// Forgets every request, attempt count and script position (`seq` keeps
    /// counting). Returns how many requests were forgotten from memory.
    pub fn clear(&mut self) -> usize {
        let n = self.journal.len();
        self.journal.clear();
        self.kept_bytes = 0;
        self.deliveries.clear();
        self.per_request.clear();
        self.received = 0;
        self.evicted = 0;
        n
    }

    /// Decides and records `req` like a request of the server and returns the length
    /// of its journal line: what one request costs the receiver apart from HTTP and
    /// the file write (`cargo bench -p hookjar-mock`). Not a stable API.
    #[doc(hidden)]
    pub fn record_for_bench(&mut self, req: Inspected) -> usize {
        let (record, _plan) = self.decide(req);
        record.line.len()
    }

    /// Decides how to answer `req`, records it and returns the record and the plan.
    /// The record's journal line is rendered here, so lines are in `seq` order.
    pub(crate) fn decide(&mut self, req: Inspected) -> (Arc<Record>, Plan) {
        let path = req.incoming.path.as_str();
        let path_only = path.split('?').next().unwrap_or_default();
        let key: DeliveryKey = {
            let mut h = std::hash::DefaultHasher::new();
            path_only.hash(&mut h);
            (h.finish(), req.digest)
        };
        let generation = self.generation;
        let hex = digest_hex(req.digest);
        let state = match self.deliveries.get_mut(&key) {
            Some(s) => s,
            None => {
                self.deliveries.insert(key, DeliveryState::default());
                self.deliveries.get_mut(&key).expect("just inserted")
            }
        };
        if state.generation != generation {
            state.generation = generation;
            state.position = 0;
        }
        let attempt = state.attempts;
        state.attempts = state.attempts.saturating_add(1);
        let seq = self.next_seq;
        self.next_seq += 1;

        let (script_name, step_name, plan) = if req.refused {
            let detail = req
                .violations
                .iter()
                .filter(|v| v.starts_with("auth:") || v.starts_with("S9 header"))
                .cloned()
                .collect::<Vec<_>>()
                .join("; ");
            let body = serde_json::json!({"detail": detail, "mock": "hookjar"}).to_string();
            let plan = Plan {
                delay: Duration::ZERO,
                answer: Answer::Status {
                    code: 401,
                    headers: vec![(
                        "www-authenticate",
                        "Basic realm=\"hookjar-mock\"".to_owned(),
                    )],
                    body,
                },
            };
            (
                Arc::clone(&self.auth_name),
                Arc::clone(&self.auth_step),
                plan,
            )
        } else {
            let index = self.compiled.pick(path_only, req.event_type.as_deref());
            let pos = match self.scripts.per {
                Per::Delivery => &mut state.position,
                Per::Request => self.per_request.entry(index).or_insert(0),
            };
            let script = &self.compiled.scripts[index];
            let step = script.step_for(*pos);
            *pos = pos.saturating_add(1);
            let plan = plan_for(step, path, seq, attempt, &hex);
            (Arc::clone(&script.name), Arc::clone(&step.name), plan)
        };

        let status = match &plan.answer {
            Answer::Status { code, .. } => Some(*code),
            _ => None,
        };
        let inc = &req.incoming;
        self.line.clear();
        render_line(
            &mut self.line,
            &LineHead {
                since_start: inc.since_start,
                received_at: inc.received_at,
                method: inc.method.as_str(),
                path,
                headers: &inc.headers,
                body: &inc.body,
                body_is_json: req.body_is_json,
                event_type: req.event_type.as_deref(),
                digest_hex: hex,
            },
            &LineTail {
                seq,
                attempt,
                script: &script_name,
                step: &step_name,
                status,
                violations: &req.violations,
            },
        );
        let record = Arc::new(Record {
            seq,
            arrived: inc.arrived,
            since_start: inc.since_start,
            received_at: inc.received_at,
            path: path.into(),
            event_type: req.event_type,
            digest: req.digest,
            attempt,
            script: script_name,
            step: step_name,
            status,
            violations: req.violations,
            line: self.line.as_slice().into(),
        });
        self.received += 1;
        if self.keep > 0 {
            if self.journal.len() >= self.keep {
                self.evict_oldest();
            }
            self.kept_bytes += record.line.len();
            self.journal.push_back(Arc::clone(&record));
            while self.kept_bytes > self.keep_bytes && self.journal.len() > 1 {
                self.evict_oldest();
            }
        } else {
            self.evicted += 1;
        }
        (record, plan)
    }

    fn evict_oldest(&mut self) {
        if let Some(old) = self.journal.pop_front() {
            self.kept_bytes -= old.line.len();
            self.evicted += 1;
        }
    }
}

/// The JSON note of a status answer (none for 204 and 304):
/// `{"mock":"hookjar","status":…,"step":…,"seq":…,"attempt":…,"digest":"…"}`.
fn status_body(step: &CompiledStep, code: u16, seq: u64, attempt: u32, hex: &[u8; 16]) -> String {
    if matches!(code, 204 | 304) {
        return String::new();
    }
    let digest = std::str::from_utf8(hex).expect("hex digits");
    let mut ints = itoa::Buffer::new();
    let mut b = String::with_capacity(96 + step.name_json.len());
    b.push_str("{\"mock\":\"hookjar\",\"status\":");
    b.push_str(ints.format(code));
    b.push_str(",\"step\":");
    b.push_str(&step.name_json);
    b.push_str(",\"seq\":");
    b.push_str(ints.format(seq));
    b.push_str(",\"attempt\":");
    b.push_str(ints.format(attempt));
    b.push_str(",\"digest\":\"");
    b.push_str(digest);
    b.push_str("\"}");
    b
}

fn plan_for(step: &CompiledStep, path: &str, seq: u64, attempt: u32, hex: &[u8; 16]) -> Plan {
    let answer = match &step.step.action {
        Action::Status(code) => Answer::Status {
            code: *code,
            headers: Vec::new(),
            body: status_body(step, *code, seq, attempt, hex),
        },
        Action::RetryAfter { code, seconds } => Answer::Status {
            code: *code,
            headers: vec![("retry-after", seconds.to_string())],
            body: status_body(step, *code, seq, attempt, hex),
        },
        Action::Redirect(target) => {
            let location = target.clone().unwrap_or_else(|| path.to_owned());
            Answer::Status {
                code: 307,
                body: serde_json::json!({"mock": "hookjar", "redirect": location}).to_string(),
                headers: vec![("location", location)],
            }
        }
        Action::RedirectTo { code, target } => Answer::Status {
            code: *code,
            body: serde_json::json!({"mock": "hookjar", "redirect": target}).to_string(),
            headers: vec![("location", target.clone())],
        },
        Action::Reset => Answer::Reset,
        Action::Hang => Answer::Hang,
        Action::Garbage => Answer::Garbage,
    };
    Plan {
        delay: step.step.delay,
        answer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookjar_core::Event;
    use time::macros::datetime;

    fn incoming(path: &str, body: &[u8], headers: &[(&str, &str)]) -> Incoming {
        Incoming {
            method: Method::POST,
            path: path.into(),
            headers: headers
                .iter()
                .map(|(k, v)| {
                    (
                        http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                        http::HeaderValue::from_str(v).unwrap(),
                    )
                })
                .collect(),
            body: Bytes::copy_from_slice(body),
            arrived: Instant::now(),
            since_start: Duration::ZERO,
            received_at: datetime!(2026-01-01 0:00 UTC),
        }
    }

    fn event(t: EventType, second: u8) -> Vec<u8> {
        let at = datetime!(2026-01-01 0:00 UTC) + Duration::from_secs(second.into());
        Event::fixture(t, at).to_payload().bytes().to_vec()
    }

    const GOOD: &[(&str, &str)] = &[
        ("content-type", "application/json"),
        ("user-agent", "skilljar"),
    ];

    fn answers(state: &mut State, reqs: &[(&str, Vec<u8>)]) -> Vec<String> {
        reqs.iter()
            .map(|(p, b)| {
                let i = Inspected::new(incoming(p, b, GOOD), &Expectations::default());
                let (rec, _) = state.decide(i);
                format!("{}:{}", rec.attempt, rec.step)
            })
            .collect()
    }

    fn scripts(text: &str) -> Scripts {
        Scripts {
            default: Script::parse(text).unwrap(),
            ..Scripts::default()
        }
    }

    #[test]
    fn per_delivery_and_per_request() {
        let (a, b) = (
            event(EventType::CourseCompletion, 1),
            event(EventType::CourseCompletion, 2),
        );
        let mut st = State::new(scripts("503*2,200"));
        let got = answers(
            &mut st,
            &[
                ("/", a.clone()),
                ("/", b.clone()),
                ("/", a.clone()),
                ("/", a.clone()),
                ("/", b.clone()),
            ],
        );
        assert_eq!(got, ["0:503", "0:503", "1:503", "2:200", "1:503"]);

        let mut s = scripts("503*2,200");
        s.per = Per::Request;
        let mut st = State::new(s);
        let got = answers(
            &mut st,
            &[
                ("/", a.clone()),
                ("/", b.clone()),
                ("/", a.clone()),
                ("/", b),
            ],
        );
        assert_eq!(got, ["0:503", "0:503", "1:200", "1:200"]);
        assert_eq!(
            st.journal().iter().map(|r| r.seq).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        assert_eq!(st.clear(), 4);
        assert_eq!(answers(&mut st, &[("/", a)]), ["0:503"]);
        assert_eq!(st.journal()[0].seq, 5);
    }

    #[test]
    fn route_beats_type_beats_default() {
        let mut s = scripts("200");
        s.routes
            .insert("/a".into(), Script::parse("reset").unwrap());
        s.for_type
            .insert(EventType::PathCompletion, Script::parse("410").unwrap());
        let mut st = State::new(s);
        let p = event(EventType::PathCompletion, 1);
        let c = event(EventType::CourseCompletion, 1);
        let got = answers(&mut st, &[("/a?x=1", p.clone()), ("/b", p), ("/b", c)]);
        // The same body at another path is another delivery: attempt 0 again.
        assert_eq!(got, ["0:reset", "0:410", "0:200"]);
        let names: Vec<&str> = st.journal().iter().map(|r| &*r.script).collect();
        assert_eq!(names, ["route /a", "for_type PATH_COMPLETION", "default"]);
    }

    #[test]
    fn violations_name_their_clause() {
        let i = Inspected::new(
            Incoming {
                method: Method::PUT,
                ..incoming(
                    "/",
                    b"[1]",
                    &[("user-agent", "curl/8"), ("content-type", "text/plain")],
                )
            },
            &Expectations::default(),
        );
        assert_eq!(
            i.violations(),
            [
                "S7 method: expected POST, got PUT",
                "S7 content-type: expected \"application/json\", got \"text/plain\"",
                "S7 user-agent: expected \"skilljar\", got \"curl/8\"",
                "S7 body: expected one JSON object, got a list",
            ]
        );
        let ok = Inspected::new(
            incoming("/", &event(EventType::CourseEnrollment, 0), GOOD),
            &Expectations::default(),
        );
        assert!(ok.violations().is_empty(), "{:?}", ok.violations());
    }

    #[test]
    fn auth_and_headers_refuse_with_401() {
        let expect = Expectations {
            basic_auth: Some(("u".into(), "p".into())),
            require_headers: vec![("x-client-id".into(), "abc".into())],
        };
        let body = event(EventType::CourseEnrollment, 0);
        let mut st = State::new(scripts("503"));
        let (rec, plan) = st.decide(Inspected::new(incoming("/", &body, GOOD), &expect));
        assert_eq!(&*rec.step, "401");
        assert_eq!(&*rec.script, "auth");
        assert_eq!(
            rec.violations,
            [
                "auth: missing Authorization (S8 expects Basic credentials)",
                "S9 header x-client-id: missing (expected \"abc\")"
            ]
        );
        assert!(matches!(plan.answer, Answer::Status { code: 401, .. }));

        let mut h = GOOD.to_vec();
        h.push(("authorization", "Basic dTpx")); // u:q
        h.push(("X-Client-Id", "abc"));
        let (rec, _) = st.decide(Inspected::new(incoming("/", &body, &h), &expect));
        assert_eq!(rec.violations, ["auth: wrong password for user \"u\""]);
        assert_eq!(rec.attempt, 1);

        h[2] = ("authorization", "Basic dTpw"); // u:p
        let (rec, plan) = st.decide(Inspected::new(incoming("/", &body, &h), &expect));
        assert!(rec.violations.is_empty(), "{:?}", rec.violations);
        assert_eq!((&*rec.step, rec.status), ("503", Some(503)));
        assert_eq!(plan.delay, Duration::ZERO);
    }

    #[test]
    fn plans_carry_delays_and_faults() {
        let mut st = State::new(scripts("200@1500ms,redirect,redirect=/b,garbage,hang,204"));
        let body = event(EventType::CourseEnrollment, 0);
        let mut plans = Vec::new();
        for _ in 0..6 {
            plans.push(
                st.decide(Inspected::new(
                    incoming("/a?q", &body, GOOD),
                    &Expectations::default(),
                ))
                .1,
            );
        }
        assert_eq!(plans[0].delay, Duration::from_millis(1500));
        let loc = |p: &Plan| match &p.answer {
            Answer::Status {
                code: 307, headers, ..
            } => headers[0].1.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(loc(&plans[1]), "/a?q");
        assert_eq!(loc(&plans[2]), "/b");
        assert_eq!(plans[3].answer, Answer::Garbage);
        assert_eq!(plans[4].answer, Answer::Hang);
        assert!(
            matches!(&plans[5].answer, Answer::Status { code: 204, body, .. } if body.is_empty())
        );
    }

    /// The journal line rendered by hand says exactly what `RecordedRequest`'s serde
    /// form says, built the slow way (a parsed tree, lossy text), for awkward inputs.
    #[test]
    fn journal_lines_match_the_serde_form() {
        let good = event(EventType::CourseEnrollment, 3);
        let mut pretty = b"{\n  \"event_type\": \"PING\",\r\n  \"timestamp\": \"2026-01-01T00:00:00.000000+00:00\"\n}\n".to_vec();
        pretty.extend_from_slice(b" ");
        type Case<'a> = (Vec<u8>, Vec<(&'a str, &'a str)>);
        let cases: Vec<Case<'_>> = vec![
            (good.clone(), GOOD.to_vec()),
            (pretty, GOOD.to_vec()),
            (b"not json \"quoted\" \\ \x01".to_vec(), vec![("user-agent", "x\ty")]),
            (b"{\"event_type\": 5}".to_vec(), GOOD.to_vec()),
            (b"[1,2]".to_vec(), vec![]),
            (vec![0xff, 0xfe, b'{'], GOOD.to_vec()),
            ("{\"event_type\":\"PI\\u004eG\",\"timestamp\":\"2026-01-01T00:00:00.000000+00:00\",\"x\":\"\u{e9}\"}".as_bytes().to_vec(), GOOD.to_vec()),
            (Vec::new(), vec![("content-type", "text/plain"), ("x-a", "1"), ("x-a", "2")]),
        ];
        let mut st = State::new(scripts("503,200@2s,redirect=/b\"q,reset"));
        for (body, headers) in cases {
            let inc = Incoming {
                received_at: datetime!(2026-01-01 0:00:00.123456789 UTC),
                since_start: Duration::from_nanos(12_345_678),
                ..incoming("/p?q=\"1\"", &body, &headers)
            };
            let expected_headers: Vec<(String, String)> = inc
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let (rec, _) = st.decide(Inspected::new(inc, &Expectations::default()));
            let report = inspect_body(&body);
            let expected = crate::RecordedRequest {
                seq: rec.seq,
                arrived: rec.arrived,
                since_start: rec.since_start,
                received_at: rec.received_at,
                method: "POST".into(),
                path: "/p?q=\"1\"".into(),
                headers: expected_headers,
                body: String::from_utf8_lossy(&body).into_owned(),
                json: report.json,
                event_type: report.event_type,
                digest: Digest::of(&body),
                attempt: rec.attempt,
                script: "default".into(),
                step: rec.step.to_string(),
                status: rec.status,
                violations: rec.violations.clone(),
            };
            let line: serde_json::Value = serde_json::from_slice(&rec.line).unwrap();
            assert_eq!(
                line,
                serde_json::to_value(&expected).unwrap(),
                "{}",
                String::from_utf8_lossy(&rec.line)
            );
            assert!(!rec.line.contains(&b'\n'), "one line");
            assert_eq!(rec.to_public(), expected);
        }
    }

    #[test]
    fn the_ring_keeps_the_last_n_and_counts_the_evicted() {
        let mut st = State::with_keep(scripts("200"), 3);
        let bodies: Vec<Vec<u8>> = (0..5)
            .map(|i| event(EventType::PathCompletion, i))
            .collect();
        for b in &bodies {
            st.decide(Inspected::new(
                incoming("/", b, GOOD),
                &Expectations::default(),
            ));
        }
        let seqs: Vec<u64> = st.journal().iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [3, 4, 5]);
        let c = st.counts();
        assert_eq!(
            (c.received, c.kept, c.evicted, c.latest_seq, c.keep),
            (5, 3, 2, 5, 3)
        );
        let after: Vec<u64> = st.since(3).map(|r| r.seq).collect();
        assert_eq!(after, [4, 5]);
        assert_eq!(st.since(0).count(), 3);
        assert_eq!(st.since(9).count(), 0);
        // Attempt numbers outlive the records: a retry of an evicted request is attempt 1.
        let (rec, _) = st.decide(Inspected::new(
            incoming("/", &bodies[0], GOOD),
            &Expectations::default(),
        ));
        assert_eq!(rec.attempt, 1);
        assert_eq!(st.clear(), 3);
        assert_eq!(st.counts().evicted, 0);
    }

    /// Big bodies: the ring holds at most `keep_bytes` of lines (the newest always,
    /// even alone over the budget), evicting the oldest first and counting them.
    #[test]
    fn the_ring_is_bounded_in_bytes_too() {
        let mut st = State::with_keep(scripts("200"), 100).keep_bytes(10_000);
        let body = |i: usize| format!("{{\"pad\":\"{}\",\"i\":{i}}}", "x".repeat(2_000));
        for i in 0..10 {
            st.decide(Inspected::new(
                incoming("/", body(i).as_bytes(), GOOD),
                &Expectations::default(),
            ));
            let kept: usize = st.journal().iter().map(|r| r.line.len()).sum();
            assert!(kept <= 10_000, "{kept} bytes kept after {i}");
            assert_eq!(st.journal().back().map(|r| r.seq), Some(i as u64 + 1));
        }
        let c = st.counts();
        assert!(c.kept >= 2 && c.kept < 5, "{c:?}");
        assert_eq!(c.received, 10);
        assert_eq!(c.evicted, 10 - c.kept as u64);
        // One request over the whole budget is still kept, alone.
        let huge = format!("{{\"pad\":\"{}\"}}", "y".repeat(20_000));
        st.decide(Inspected::new(
            incoming("/", huge.as_bytes(), GOOD),
            &Expectations::default(),
        ));
        assert_eq!(st.journal().len(), 1);
        assert_eq!(st.counts().evicted, 10);
        assert_eq!(st.clear(), 1);
        for i in 0..2 {
            st.decide(Inspected::new(
                incoming("/", body(i).as_bytes(), GOOD),
                &Expectations::default(),
            ));
        }
        assert_eq!(
            st.journal().len(),
            2,
            "the byte count starts again after a clear"
        );
    }

    #[test]
    fn per_delivery_state_is_bounded_least_recently_seen_first() {
        let mut st = State::with_keep(scripts("503,200"), 1);
        let cap = tracked_deliveries(1);
        let first = event(EventType::CourseCompletion, 0);
        let decide = |st: &mut State, b: &[u8]| {
            st.decide(Inspected::new(
                incoming("/", b, GOOD),
                &Expectations::default(),
            ))
            .0
        };
        assert_eq!(decide(&mut st, &first).attempt, 0);
        // `cap` other deliveries push the first one out.
        for i in 0..cap as u64 {
            let body = format!("{{\"n\":{i}}}");
            decide(&mut st, body.as_bytes());
        }
        assert_eq!(st.deliveries.len(), cap);
        let again = decide(&mut st, &first);
        assert_eq!(
            (again.attempt, &*again.step),
            (0, "503"),
            "forgotten, starts again"
        );
        // A delivery seen recently stays.
        let again = decide(&mut st, &first);
        assert_eq!((again.attempt, &*again.step), (1, "200"));
    }

    proptest::proptest! {
        /// The borrowed quick check never passes a body the full check would flag,
        /// and agrees on the event type.
        #[test]
        fn quick_body_never_passes_what_the_full_check_flags(
            et in proptest::sample::select(vec!["\"PING\"", "\"COURSE_COMPLETION\"", "\"course-completion\"", "\"NOPE\"", "5", "null", "\"PI\\u004eG\"", "[]"]),
            ts in proptest::sample::select(vec!["\"2026-01-01T00:00:00.000000+00:00\"", "\"2026-01-01T00:00:00Z\"", "1", "\"x\""]),
            shape in 0usize..8,
        ) {
            let body = match shape {
                0 => format!("{{\"event_type\":{et},\"timestamp\":{ts}}}"),
                1 => format!("{{\"timestamp\":{ts},\"a\":{{\"b\":[1,{{}}]}},\"event_type\":{et}}}"),
                2 => format!("{{\"event_type\":{et}}}"),
                3 => format!("{{\"event_type\":{et},\"timestamp\":{ts},\"event_type\":{et}}}"),
                4 => format!("[{{\"event_type\":{et},\"timestamp\":{ts}}}]"),
                5 => format!("{{\"event_type\":{et},\"timestamp\":{ts}}} x"),
                6 => format!(" {{ \"event_type\" : {et} ,\n \"timestamp\" : {ts} }} "),
                _ => format!("{{\"event_type\":{et},\"timestamp\":{ts},\"u\":\"\u{e9}\\n\"}}"),
            };
            let full = inspect_body(body.as_bytes());
            if let Some(t) = quick_body(body.as_bytes()) {
                proptest::prop_assert!(full.problems.is_empty(), "{body}: {:?}", full.problems);
                proptest::prop_assert_eq!(full.event_type.as_deref(), Some(&*t));
                proptest::prop_assert!(full.json.is_some());
            }
        }
    }
}
