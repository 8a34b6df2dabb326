//! The receiver's decisions, synchronous and free of I/O.
//!
//! A request goes through two steps:
//! 1. [`Inspected::new`] — without any lock: parse the body once, compute the digest,
//!    check S7–S11 and the [`Expectations`].
//! 2. [`State::decide`] — under the receiver's lock, briefly: pick the script, take
//!    its next step, count the attempt, append the record (O(1)), return a [`Plan`].
//!
//! The I/O layer then performs the plan (waits, answers, faults) after the lock is
//! released. Time is passed in, never read.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hookjar_core::payload::inspect_body;
use hookjar_core::request::{CONTENT_TYPE, USER_AGENT, decode_basic_auth};
use hookjar_core::script::{Action, Script, Step};
use hookjar_core::{Digest, EventType};
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::config::{Expectations, Per, Scripts};
use crate::record::RecordedRequest;

/// A webhook request as it arrived, before any check.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// The method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers in arrival order, names lowercase.
    pub headers: Vec<(String, String)>,
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
    json: Option<serde_json::Value>,
    event_type: Option<String>,
    digest: Digest,
    violations: Vec<String>,
    refused: bool,
}

impl Inspected {
    /// Parses the body once and lists every violation of S7–S11 and of `expect`.
    pub fn new(incoming: Incoming, expect: &Expectations) -> Self {
        let mut violations = Vec::new();
        let header = |name: &str| {
            incoming
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        if incoming.method != "POST" {
            violations.push(format!("S7 method: expected POST, got {}", incoming.method));
        }
        match header("content-type") {
            Some(v) if v.trim().eq_ignore_ascii_case(CONTENT_TYPE) => {}
            Some(v) => violations.push(format!(
                "S7 content-type: expected {CONTENT_TYPE:?}, got {v:?}"
            )),
            None => violations.push(format!(
                "S7 content-type: expected {CONTENT_TYPE:?}, got nothing"
            )),
        }
        match header("user-agent") {
            Some(USER_AGENT) => {}
            Some(v) => {
                violations.push(format!("S7 user-agent: expected {USER_AGENT:?}, got {v:?}"))
            }
            None => violations.push(format!(
                "S7 user-agent: expected {USER_AGENT:?}, got nothing"
            )),
        }
        let report = inspect_body(&incoming.body);
        violations.extend(report.problems);

        let mut refused = false;
        if let Some((user, pass)) = &expect.basic_auth {
            match header("authorization") {
                None => violations
                    .push("auth: missing Authorization (S8 expects Basic credentials)".to_owned()),
                Some(v) => match decode_basic_auth(v) {
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
            match header(name) {
                Some(v) if v == want => {}
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
            json: report.json,
            event_type: report.event_type,
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

/// Which script answered a request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// The default script.
    Default,
    /// A per-path script.
    Route(String),
    /// A per-event-type script.
    Type(EventType),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::Route(p) => write!(f, "route {p}"),
            Source::Type(t) => write!(f, "for_type {t}"),
        }
    }
}

/// The receiver's mutable state: scripts, positions, attempt counts and the journal.
#[derive(Debug, Default)]
pub struct State {
    scripts: Scripts,
    journal: Vec<Arc<RecordedRequest>>,
    /// Attempts per delivery: (path without query, body digest). One event fanned out
    /// to two URLs of one receiver is two deliveries.
    attempts: HashMap<(String, Digest), u32>,
    positions: HashMap<(Source, Option<(String, Digest)>), u64>,
    next_seq: u64,
}

impl State {
    /// A fresh state answering with `scripts`.
    pub fn new(scripts: Scripts) -> Self {
        State {
            scripts,
            next_seq: 1,
            ..State::default()
        }
    }

    /// The scripts in force.
    pub fn scripts(&self) -> &Scripts {
        &self.scripts
    }

    /// Replaces the scripts; every script starts again from its first step.
    pub fn set_scripts(&mut self, scripts: Scripts) {
        self.scripts = scripts;
        self.positions.clear();
    }

    /// Every request so far, in arrival order.
    pub fn journal(&self) -> &[Arc<RecordedRequest>] {
        &self.journal
    }

    /// Forgets every request, attempt count and script position (`seq` keeps
    /// counting). Returns how many requests were forgotten.
    pub fn clear(&mut self) -> usize {
        let n = self.journal.len();
        self.journal.clear();
        self.attempts.clear();
        self.positions.clear();
        n
    }

    /// Decides how to answer `req`, records it and returns the record and the plan.
    pub fn decide(&mut self, req: Inspected) -> (Arc<RecordedRequest>, Plan) {
        let delivery = (
            req.incoming
                .path
                .split('?')
                .next()
                .unwrap_or_default()
                .to_owned(),
            req.digest,
        );
        let attempt = {
            let n = self.attempts.entry(delivery.clone()).or_insert(0);
            let a = *n;
            *n = n.saturating_add(1);
            a
        };
        let seq = self.next_seq;
        self.next_seq += 1;

        let (script_name, step, plan) = if req.refused {
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
            ("auth".to_owned(), "401".to_owned(), plan)
        } else {
            let (source, script) = pick(&self.scripts, &req);
            let key_digest = match self.scripts.per {
                Per::Delivery => Some(delivery),
                Per::Request => None,
            };
            let pos = self
                .positions
                .entry((source.clone(), key_digest))
                .or_insert(0);
            let step = script.step_for(*pos).single();
            *pos = pos.saturating_add(1);
            let plan = plan_for(&step, &req.incoming.path, seq, attempt, req.digest);
            (source.to_string(), step.to_string(), plan)
        };

        let status = match &plan.answer {
            Answer::Status { code, .. } => Some(*code),
            _ => None,
        };
        let inc = req.incoming;
        let record = Arc::new(RecordedRequest {
            seq,
            arrived: inc.arrived,
            since_start: inc.since_start,
            received_at: inc.received_at,
            method: inc.method,
            path: inc.path,
            headers: inc.headers,
            body: String::from_utf8_lossy(&inc.body).into_owned(),
            json: req.json,
            event_type: req.event_type,
            digest: req.digest,
            attempt,
            script: script_name,
            step,
            status,
            violations: req.violations,
        });
        self.journal.push(Arc::clone(&record));
        (record, plan)
    }
}

/// The script that answers `req`: its path's, else its event type's, else the default.
fn pick<'s>(scripts: &'s Scripts, req: &Inspected) -> (Source, &'s Script) {
    let path = req.incoming.path.split('?').next().unwrap_or_default();
    if let Some(s) = scripts.routes.get(path) {
        return (Source::Route(path.to_owned()), s);
    }
    if let Some(t) = req
        .event_type
        .as_deref()
        .and_then(|t| t.parse::<EventType>().ok())
    {
        if let Some(s) = scripts.for_type.get(&t) {
            return (Source::Type(t), s);
        }
    }
    (Source::Default, &scripts.default)
}

fn plan_for(step: &Step, path: &str, seq: u64, attempt: u32, digest: Digest) -> Plan {
    let answer = match &step.action {
        Action::Status(code) => {
            let body = if matches!(code, 204 | 304) {
                String::new()
            } else {
                serde_json::json!({
                    "mock": "hookjar",
                    "status": code,
                    "step": step.to_string(),
                    "seq": seq,
                    "attempt": attempt,
                    "digest": digest,
                })
                .to_string()
            };
            Answer::Status {
                code: *code,
                headers: Vec::new(),
                body,
            }
        }
        Action::Redirect(target) => {
            let location = target.clone().unwrap_or_else(|| path.to_owned());
            Answer::Status {
                code: 307,
                body: serde_json::json!({"mock": "hookjar", "redirect": location}).to_string(),
                headers: vec![("location", location)],
            }
        }
        Action::Reset => Answer::Reset,
        Action::Hang => Answer::Hang,
        Action::Garbage => Answer::Garbage,
    };
    Plan {
        delay: step.delay,
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
            method: "POST".into(),
            path: path.into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
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
        let names: Vec<&str> = st.journal().iter().map(|r| r.script.as_str()).collect();
        assert_eq!(names, ["route /a", "for_type PATH_COMPLETION", "default"]);
    }

    #[test]
    fn violations_name_their_clause() {
        let i = Inspected::new(
            Incoming {
                method: "PUT".into(),
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
        assert_eq!(rec.step, "401");
        assert_eq!(rec.script, "auth");
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
        assert_eq!((rec.step.as_str(), rec.status), ("503", Some(503)));
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
}
