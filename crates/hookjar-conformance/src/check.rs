//! The endpoint check: sends what Skilljar sends to an integrator's URL and judges each
//! answer the way Skilljar will (S7–S18).
//!
//! Cases, in order:
//! - `event.<TYPE>` — each of the ten fixtures, freshly stamped, must get a 2xx (S10, S11,
//!   S17); any other answer is explained ("a 404 here would deactivate your webhook…").
//! - `ping` — the PING payload must get a 2xx (S13).
//! - `auth.missing`, `auth.wrong` — with `--basic-auth`, requests without or with wrong
//!   credentials must be **rejected** with a 4xx (S8: the header is there so the endpoint
//!   can deny forged posts).
//! - `header.<name>.missing`, `header.<name>.wrong` — the same for each required header (S9).
//! - `duplicate` — the same bytes twice (a retry after a lost answer) must both get 2xx (S11,
//!   X5: there is no event id to deduplicate on, and a 4xx would deactivate).
//! - `unknown-fields` — a payload with extra keys, at the top and in each of its objects,
//!   must get 2xx (S11).
//! - `values` — the values real learners and courses have (an apostrophe, accents,
//!   another script, quotes, `&`, `<>`, an emoji) in names, emails and titles must get
//!   2xx (S11).
//! - `concurrent` — one event of each accepted type, all sent at the same moment,
//!   must each get 2xx: Skilljar delivers side by side (S12, S19), and a receiver that
//!   refuses a request while it handles another (a global lock answering 409) is
//!   deactivated by the first overlap.
//! - `late-retry` — each type stamped 50.1 h ago (the retry life-cycle, S15), sent
//!   after newer events, must get 2xx: Skilljar's last retry resends the first bytes,
//!   timestamp included, and no order between events is promised (S19), so an endpoint
//!   that refuses old or out-of-order timestamps deactivates on a late retry.
//! - `new-type`, `future-timestamp` — warnings only: an event of a type Skilljar may
//!   add (S10: the types have grown before; a webhook for all types gets new ones), and
//!   an event stamped 30 s ahead of this machine's clock, should get a 2xx.
//! - `latency` — every answer within the timeout; past half of it is a warning. An
//!   answer slower than Skilljar's own 10 s fails (under a longer `--timeout`), here and
//!   in each case it came in: Skilljar counts it a timeout and retries, and an endpoint
//!   that slow every time ends deactivated. Requests that got no answer (refused,
//!   reset) are not timed; when none was answered the case fails rather than passing on
//!   nothing.
//!
//! Every accepted-answer case also fails an endpoint that answers a POST with a
//! 301/302/303 redirect (the client follows it as a bodiless GET, so the event is lost,
//! S18), and says plainly that a 429 deactivates the webhook on Skilljar (S16). A failed
//! `ping` says that a ping is never retried and never deactivates (S13); the `duplicate`
//! case reports both sends' times.
//!
//! The probes after the events (auth, headers, `duplicate`, `unknown-fields`, `values`,
//! `concurrent`, `late-retry`) run once for every type the endpoint accepted (an endpoint's handling
//! often differs by type), and each is one case that names the types it failed for;
//! a type the endpoint refused is not blamed on them. With all ten types and Basic auth
//! that is about 100 requests. Each request goes on a new connection, as Python's
//! `requests.post` sends it, so that one case's leftovers on a connection cannot change
//! the next one's answer.

use std::time::Duration;

use hookjar_core::webhook::Headers;
use hookjar_core::{DeliveryRequest, Event, EventType, Outcome, Payload, RetryPolicy};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::report::{CaseResult, Report, Status};
use hookjar_dispatch::deliver::{MAX_REDIRECTS, Sender, Sent};

/// Skilljar's own timeout (S18): an answer slower than this is a timeout there,
/// whatever `--timeout` a run uses.
const SKILLJAR_TIMEOUT: Duration = Duration::from_secs(10);

/// What to check and how.
#[derive(Debug, Clone)]
pub struct CheckConfig {
    /// The integrator's endpoint.
    pub url: String,
    /// Basic auth the webhook is configured with (S8), if any.
    pub basic_auth: Option<(String, String)>,
    /// Additional headers the webhook is configured with (S9).
    pub headers: Headers,
    /// The dispatcher's timeout (default 10 s).
    pub timeout: Duration,
    /// The retry policy used to explain failures.
    pub policy: RetryPolicy,
    /// The event types to send (default: all ten).
    pub types: Vec<EventType>,
}

impl CheckConfig {
    /// Defaults for `url`: no auth, no headers, 10 s, Skilljar's policy, all types.
    pub fn new(url: impl Into<String>) -> Self {
        CheckConfig {
            url: url.into(),
            basic_auth: None,
            headers: Headers::new(),
            timeout: Duration::from_secs(10),
            policy: RetryPolicy::default(),
            types: EventType::ALL.to_vec(),
        }
    }

    fn request(&self, body: Payload) -> DeliveryRequest {
        let (u, p) = self
            .basic_auth
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str()))
            .unwrap_or(("", ""));
        DeliveryRequest::new(self.url.clone(), u, p, &self.headers, body)
    }
}

/// How many cases [`run`] reports for `config` (a progress bar's length): the
/// types, the ping, auth (two cases, or one skip), two per header, then
/// `duplicate`, `unknown-fields`, `values`, `concurrent`, `late-retry`, `new-type`,
/// `future-timestamp` and `latency`.
pub fn case_count(config: &CheckConfig) -> usize {
    let auth = if config.basic_auth.is_some() { 2 } else { 1 };
    config.types.len() + 1 + auth + 2 * config.headers.len() + 8
}

/// Something that tells the caller how far the run is (a progress bar, or nothing).
pub trait Progress {
    /// A case is about to run.
    fn start(&mut self, id: &str);
    /// A case finished.
    fn done(&mut self, result: &CaseResult);
}

/// No progress output.
#[derive(Debug, Default)]
pub struct Quiet;

impl Progress for Quiet {
    fn start(&mut self, _id: &str) {}
    fn done(&mut self, _result: &CaseResult) {}
}

/// Runs every case against `config.url`. `now` gives the timestamps of the payloads.
pub async fn run(
    config: &CheckConfig,
    now: impl Fn() -> OffsetDateTime,
    progress: &mut dyn Progress,
) -> Result<Report, hookjar_dispatch::StartError> {
    let sender = Sender::one_connection_per_request(config.timeout, MAX_REDIRECTS)?;
    let started = tokio::time::Instant::now();
    let mut report = Report::new("endpoint-check", config.url.clone());
    // Each request's latency, or None when it got no answer to time (refused, reset).
    let mut latencies: Vec<(String, Option<Duration>)> = Vec::new();
    let push = |report: &mut Report, progress: &mut dyn Progress, r: CaseResult| {
        progress.done(&r);
        report.cases.push(r);
    };

    // Each event type, then a ping: all must be accepted.
    let mut accepted = Vec::new();
    for &t in &config.types {
        let id = format!("event.{}", t.as_str());
        progress.start(&id);
        let payload = Event::fixture(t, now()).to_payload();
        let sent = sender.send(&config.request(payload)).await;
        latencies.push(timed(&id, &sent));
        let r = expect_accepted(&id, "S10,S17", &sent, config);
        accepted.push(r.status != Status::Fail);
        push(&mut report, progress, r);
    }
    progress.start("ping");
    let sent = sender
        .send(&config.request(Event::ping(now()).to_payload()))
        .await;
    latencies.push(timed("ping", &sent));
    let mut r = expect_accepted("ping", "S13", &sent, config);
    if r.status == Status::Fail && (sent.downgraded.is_some() || sent.latency >= SKILLJAR_TIMEOUT) {
        // The redirect or the slowness is what matters, for an event as for a ping.
        r.seen = format!(
            "{}; a failed ping itself is never retried and never deactivates the webhook (S13)",
            r.seen
        );
    } else if r.status == Status::Fail {
        // A ping is never retried and never deactivates (S13); say what the same
        // answer to an event would do.
        r.seen = format!(
            "{} in {}ms: a failed ping is never retried and never deactivates the webhook (S13), but the same answer to an event would count: {}",
            sent.outcome,
            sent.latency.as_millis(),
            config.policy.explain(&sent.outcome)
        );
    }
    push(&mut report, progress, r);

    // The probes below run once for every type the endpoint accepted above: an
    // endpoint's handling often differs by type (a handler per type, a unique key on
    // completions only, auth checked in some handlers), and a refused type is not
    // blamed on what a probe looks at.
    let mut probe_types: Vec<EventType> = config
        .types
        .iter()
        .zip(&accepted)
        .filter(|(_, ok)| **ok)
        .map(|(t, _)| *t)
        .collect();
    if probe_types.is_empty() {
        probe_types.push(
            config
                .types
                .first()
                .copied()
                .unwrap_or(EventType::CourseEnrollment),
        );
    }

    // Forged requests must be refused, when the webhook is configured to carry proof.
    if let Some((user, _)) = &config.basic_auth {
        for (id, u, p, what) in [
            ("auth.missing", "", "", "without Basic auth"),
            (
                "auth.wrong",
                user.as_str(),
                "hookjar-wrong-password",
                "with a wrong Basic auth password",
            ),
        ] {
            progress.start(id);
            let mut results = Vec::new();
            for &t in &probe_types {
                let payload = Event::fixture(t, now()).to_payload();
                let req = DeliveryRequest::new(config.url.clone(), u, p, &config.headers, payload);
                let sent = sender.send(&req).await;
                results.push((t, expect_rejected(id, "S8", what, &sent)));
            }
            push(&mut report, progress, combine(results));
        }
    } else {
        push(
            &mut report,
            progress,
            CaseResult::new(
                "auth",
                "S8",
                Status::Skip,
                "requests without valid Basic auth are rejected",
                "no --basic-auth given: Basic auth is not checked (Skilljar recommends it so your endpoint can deny forged posts)",
            ),
        );
    }
    for (name, value) in &config.headers {
        for (suffix, replacement, what) in [
            ("missing", None, format!("without the {name} header")),
            (
                "wrong",
                Some(format!("{value}-hookjar-wrong")),
                format!("with a wrong {name} value"),
            ),
        ] {
            let id = format!("header.{name}.{suffix}");
            progress.start(&id);
            let mut headers = config.headers.clone();
            match replacement {
                None => {
                    headers.remove(name);
                }
                Some(v) => {
                    headers.insert(name.clone(), v);
                }
            }
            let (u, p) = config
                .basic_auth
                .clone()
                .unwrap_or((String::new(), String::new()));
            let mut results = Vec::new();
            for &t in &probe_types {
                let payload = Event::fixture(t, now()).to_payload();
                let req = DeliveryRequest::new(config.url.clone(), &u, &p, &headers, payload);
                let sent = sender.send(&req).await;
                results.push((t, expect_rejected(&id, "S9", &what, &sent)));
            }
            push(&mut report, progress, combine(results));
        }
    }

    // A retry after a lost answer resends the same bytes: both must be accepted.
    progress.start("duplicate");
    let mut results = Vec::new();
    for &t in &probe_types {
        let req = config.request(Event::fixture(t, now()).to_payload());
        let first = sender.send(&req).await;
        let second = sender.send(&req).await;
        for sent in [&first, &second] {
            latencies.push(timed("duplicate", sent));
        }
        results.push((t, duplicate_case(&first, &second, config)));
    }
    push(&mut report, progress, combine(results));

    // Unknown keys must be tolerated.
    progress.start("unknown-fields");
    let mut results = Vec::new();
    for &t in &probe_types {
        let mut event = Event::fixture(t, now());
        event.data.insert(
            "hookjar_unknown_field".into(),
            json!({"note": "Skilljar may add keys; receivers must tolerate them"}),
        );
        // And one in each of the event's objects (user, course, lesson, …).
        for value in event.data.values_mut() {
            if let Value::Object(object) = value {
                object.insert("hookjar_unknown_nested".into(), json!(true));
            }
        }
        let sent = sender.send(&config.request(event.to_payload())).await;
        latencies.push(timed("unknown-fields", &sent));
        results.push((t, expect_accepted("unknown-fields", "S11", &sent, config)));
    }
    push(&mut report, progress, combine(results));

    // Real learners' names and real course titles: apostrophes, quotes, accents,
    // other scripts, emoji. Skilljar sends them as they were typed.
    progress.start("values");
    let mut results = Vec::new();
    for &t in &probe_types {
        let mut event = Event::fixture(t, now());
        for value in event.data.values_mut() {
            realistic_values(value);
        }
        let sent = sender.send(&config.request(event.to_payload())).await;
        latencies.push(timed("values", &sent));
        let mut r = expect_accepted("values", "S11", &sent, config);
        r.expected = format!(
            "2xx for a payload with the values real learners and courses have: {}",
            REALISTIC_VALUES_SHOWN
        );
        if r.status == Status::Fail && sent.downgraded.is_none() && !is_2xx(&sent.outcome) {
            r.seen = format!(
                "{}; the same type with plain ASCII values was accepted, so the values are the cause: store and compare text as UTF-8, and never build SQL or shell commands from it",
                r.seen
            );
        }
        results.push((t, r));
    }
    push(&mut report, progress, combine(results));

    // Skilljar sends deliveries side by side (several events at once, retries falling
    // due together; S12, S19): one event of each accepted type, all at once.
    progress.start("concurrent");
    let mut sends = tokio::task::JoinSet::new();
    for &t in &probe_types {
        let (sender, req) = (
            sender.clone(),
            config.request(Event::fixture(t, now()).to_payload()),
        );
        sends.spawn(async move { (t, sender.send(&req).await) });
    }
    let mut results = Vec::new();
    while let Some(done) = sends.join_next().await {
        let Ok((t, sent)) = done else { continue };
        latencies.push(timed("concurrent", &sent));
        let mut r = expect_accepted("concurrent", "S12,S19", &sent, config);
        r.expected = format!(
            "2xx for each of {} events sent at the same moment",
            probe_types.len()
        );
        if r.status == Status::Fail && sent.downgraded.is_none() && !is_2xx(&sent.outcome) {
            r.seen = format!(
                "{}; the same type, sent alone, was accepted: Skilljar delivers events side by side, so a request that comes while another is handled must be accepted too",
                r.seen
            );
        }
        results.push((t, r));
    }
    // In the order of the types, whatever order the answers came in.
    results.sort_by_key(|(t, _)| probe_types.iter().position(|p| p == t));
    let mut r = combine(results);
    // Side by side, the case took as long as its slowest request, not their sum.
    r.duration = latencies
        .iter()
        .rev()
        .take(probe_types.len())
        .filter_map(|(_, d)| *d)
        .max()
        .unwrap_or_default();
    push(&mut report, progress, r);

    // Skilljar's last retry resends the first attempt's bytes, timestamp included,
    // 50 hours later (S11, S15), and promises no order between events (S19): an old
    // timestamp, after newer events, must be accepted too.
    progress.start("late-retry");
    let span = config.policy.total();
    let mut results = Vec::new();
    for &t in &probe_types {
        let sent = sender
            .send(&config.request(Event::fixture(t, now() - span).to_payload()))
            .await;
        latencies.push(timed("late-retry", &sent));
        let mut r = expect_accepted("late-retry", "S11,S15,S19", &sent, config);
        r.expected = format!(
            "2xx for an event stamped {} ago, sent after newer ones: the last retry of an event resends its first bytes, timestamp included",
            hookjar_core::verdict::human_duration(span)
        );
        // A refusal of the old stamp itself: the same type, freshly stamped, was
        // accepted above. (A timeout or a 5xx here is no refusal of the timestamp.)
        let refused = sent
            .outcome
            .status_code()
            .is_some_and(|c| (400..500).contains(&c));
        if r.status == Status::Fail && sent.downgraded.is_none() && refused {
            r.seen = format!(
                "{}; refusing old or out-of-order timestamps (replay protection, ordering) turns Skilljar's own late retries into a deactivation: accept them, and deduplicate by content instead (X5)",
                r.seen
            );
        }
        results.push((t, r));
    }
    push(&mut report, progress, combine(results));

    // Warnings: what Skilljar may well send one day.
    let probe = probe_types[0];
    progress.start("new-type");
    let mut event = Event::fixture(probe, now());
    event.event_type = NEW_TYPE.into();
    let sent = sender.send(&config.request(event.to_payload())).await;
    latencies.push(timed("new-type", &sent));
    let r = expect_tolerated(
        "new-type",
        "S10,S12",
        &format!("an event of a type Skilljar may add ({NEW_TYPE}) gets a 2xx"),
        &sent,
        config,
        "Skilljar adds event types (its schema lists ten, its first docs nine), and a webhook for all types gets the new ones: answer 2xx to types you do not handle, and ignore them",
    );
    push(&mut report, progress, r);

    progress.start("future-timestamp");
    let sent = sender
        .send(&config.request(Event::fixture(probe, now() + CLOCK_SKEW).to_payload()))
        .await;
    latencies.push(timed("future-timestamp", &sent));
    let r = expect_tolerated(
        "future-timestamp",
        "S11",
        &format!(
            "an event stamped {} s ahead of this machine's clock gets a 2xx",
            CLOCK_SKEW.whole_seconds()
        ),
        &sent,
        config,
        "Skilljar's clock and yours differ by seconds, either way: do not refuse a timestamp in your future",
    );
    push(&mut report, progress, r);

    // Latency against the timeout.
    let r = latency_case(&latencies, config.timeout);
    push(&mut report, progress, r);

    report.duration = started.elapsed();
    Ok(report)
}

/// The `event_type` of the `new-type` case: none of Skilljar's, and plainly a test.
const NEW_TYPE: &str = "HOOKJAR_FUTURE_EVENT_TYPE";

/// How far ahead of this machine's clock the `future-timestamp` case stamps.
const CLOCK_SKEW: time::Duration = time::Duration::seconds(30);

/// The values of the `values` case, in the words of its expectation.
const REALISTIC_VALUES_SHOWN: &str = "first name Siobhán, last name O'Brien-Łukasiewicz 李, email siobhan.o'brien+skilljar@example.com, titles with quotes, an ampersand, angle brackets and an emoji";

/// Puts the values real learners and courses have into the string fields of an
/// event's object, wherever they are (nested items included).
fn realistic_values(value: &mut Value) {
    match value {
        Value::Object(object) => {
            for (key, v) in object.iter_mut() {
                let text = match key.as_str() {
                    "first_name" => Some("Siobhán"),
                    "last_name" => Some("O'Brien-Łukasiewicz 李"),
                    "email" => Some("siobhan.o'brien+skilljar@example.com"),
                    "title" => Some("Intro to \"Webhooks\" & <APIs> — Übung 2 🚀"),
                    _ => None,
                };
                match (text, &v) {
                    (Some(text), Value::String(_)) => *v = Value::String(text.to_owned()),
                    _ => realistic_values(v),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(realistic_values),
        _ => {}
    }
}

/// A probe run once per type as one case: it passes only if it passed for every
/// type; otherwise it shows the first type's failure (or warning) and names the
/// other types that failed too.
fn combine(results: Vec<(EventType, CaseResult)>) -> CaseResult {
    let duration = results.iter().map(|(_, r)| r.duration).sum();
    let n = results.len();
    let worst = [Status::Fail, Status::Warn, Status::Inconclusive]
        .into_iter()
        .find(|s| results.iter().any(|(_, r)| r.status == *s));
    let mut combined = match worst {
        None => {
            let (_, first) = &results[0];
            let mut r = first.clone();
            if n > 1 {
                r.seen = format!(
                    "{} (and for the {} other types accepted above)",
                    r.seen,
                    n - 1
                );
            }
            r
        }
        Some(status) => {
            let mut bad = results.iter().filter(|(_, r)| r.status == status);
            let (t, first) = bad.next().expect("found above");
            let others: Vec<&str> = bad.map(|(t, _)| t.as_str()).collect();
            let mut r = first.clone();
            r.seen = if n == 1 {
                first.seen.clone()
            } else if others.is_empty() {
                format!("{}: {}", t.as_str(), first.seen)
            } else if others.len() + 1 == n {
                format!("{} (and the same for all {n} types)", first.seen)
            } else {
                format!(
                    "{}: {} (the same for {})",
                    t.as_str(),
                    first.seen,
                    others.join(", ")
                )
            };
            r
        }
    };
    combined.duration = duration;
    combined
}

/// The `duplicate` case for one type: the same request sent twice.
fn duplicate_case(first: &Sent, second: &Sent, config: &CheckConfig) -> CaseResult {
    let lost = first.downgraded.or(second.downgraded);
    let both_ok = is_2xx(&first.outcome) && is_2xx(&second.outcome) && lost.is_none();
    let mut r = CaseResult::check(
        "duplicate",
        "S11,X5",
        both_ok,
        "the same bytes sent twice (a retry after a lost answer) are both accepted with 2xx",
        if let Some(code) = lost {
            format!(
                "{} then {}: a {code} redirect turned the POST into a GET without the body, so neither copy reached your endpoint (S18); answer at the final URL, or redirect with 307/308",
                first.outcome, second.outcome
            )
        } else if both_ok {
            format!(
                "{} in {}ms then {} in {}ms",
                first.outcome,
                first.latency.as_millis(),
                second.outcome,
                second.latency.as_millis()
            )
        } else {
            let bad = if is_2xx(&first.outcome) {
                second
            } else {
                first
            };
            format!(
                "{} in {}ms then {} in {}ms: {}",
                first.outcome,
                first.latency.as_millis(),
                second.outcome,
                second.latency.as_millis(),
                config.policy.explain(&bad.outcome)
            )
        },
    );
    let slowest = first.latency.max(second.latency);
    if r.status == Status::Pass && slowest >= SKILLJAR_TIMEOUT {
        r.status = Status::Fail;
        r.seen = format!("{}: {}", r.seen, too_slow_for_skilljar());
    } else if r.status == Status::Pass && slowest > config.timeout / 2 {
        r.status = Status::Warn;
        r.seen = format!(
            "{}: slower than half the {}s timeout",
            r.seen,
            config.timeout.as_secs_f64()
        );
    }
    r.duration = first.latency + second.latency;
    r
}

/// A case about what Skilljar may send one day rather than what it sends now: a
/// 2xx passes; anything else is a warning that says what it would lead to, and why
/// it may come (`why`).
fn expect_tolerated(
    id: &str,
    clause: &str,
    expected: &str,
    sent: &Sent,
    config: &CheckConfig,
    why: &str,
) -> CaseResult {
    let mut r = expect_accepted(id, clause, sent, config);
    r.expected = expected.to_owned();
    if r.status == Status::Fail {
        r.status = Status::Warn;
        r.seen = format!("{}; {why}", r.seen);
    }
    r
}

/// A request's entry for the `latency` case: its time, or `None` when it got no
/// answer to time.
fn timed(id: &str, sent: &Sent) -> (String, Option<Duration>) {
    (
        id.to_owned(),
        Some(sent.latency).filter(|_| answered(&sent.outcome)),
    )
}

/// Whether the request got an answer whose time means something: an HTTP status, or
/// a timeout (which took the whole timeout). A refused or reset connection did not.
fn answered(o: &Outcome) -> bool {
    match o {
        Outcome::Status { .. } | Outcome::TooManyRedirects { .. } => true,
        Outcome::Transport { error, .. } => *error == hookjar_core::verdict::TransportKind::Timeout,
    }
}

fn is_2xx(o: &Outcome) -> bool {
    matches!(o, Outcome::Status { code } if (200..300).contains(code))
}

/// What an answer slower than Skilljar's timeout leads to, however it ended.
fn too_slow_for_skilljar() -> String {
    format!(
        "within this run's --timeout, but Skilljar gives up after {}s, counts a timeout and retries (S18): an endpoint this slow on every attempt is deactivated after the last retry (RETRY_COUNT, S15); answer within {}s (acknowledge first, do the work after)",
        SKILLJAR_TIMEOUT.as_secs(),
        SKILLJAR_TIMEOUT.as_secs()
    )
}

fn expect_accepted(id: &str, clause: &str, sent: &Sent, config: &CheckConfig) -> CaseResult {
    let ms = sent.latency.as_millis();
    let mut r = if let Some(code) = sent.downgraded {
        // S18: Skilljar's client turns the POST into a GET without the body.
        CaseResult::new(
            id,
            clause,
            Status::Fail,
            "2xx",
            format!(
                "{} in {ms}ms after a {code} redirect turned the POST into a GET without the body: the event is lost (Skilljar's client does the same); answer at the final URL, or redirect with 307/308, which keep the POST{}",
                sent.outcome,
                if is_2xx(&sent.outcome) {
                    String::new()
                } else {
                    format!(
                        "; and the GET's answer counts as this delivery's: {}",
                        config.policy.explain(&sent.outcome)
                    )
                }
            ),
        )
    } else if is_2xx(&sent.outcome) {
        CaseResult::new(
            id,
            clause,
            Status::Pass,
            "2xx",
            format!("{} in {ms}ms", sent.outcome),
        )
    } else {
        CaseResult::new(
            id,
            clause,
            Status::Fail,
            "2xx",
            format!(
                "{} in {ms}ms: {}{}",
                sent.outcome,
                config.policy.explain(&sent.outcome),
                if sent.outcome.status_code() == Some(429) {
                    "; a 429 (rate limit) is no exception on Skilljar: it deactivates the webhook like any 4xx, so exempt Skilljar's requests from rate limiting"
                } else if matches!(sent.outcome.status_code(), Some(401 | 403))
                    && sent.hops.iter().any(|h| h.auth_dropped)
                {
                    "; a redirect to another scheme, host or port dropped the Authorization header on the way (Python's requests does the same), which is likely why it was refused: answer at the URL the webhook names"
                } else {
                    ""
                }
            ),
        )
    };
    if r.status == Status::Pass && sent.latency >= SKILLJAR_TIMEOUT {
        r.status = Status::Fail;
        r.seen = format!("{} in {ms}ms: {}", sent.outcome, too_slow_for_skilljar());
    } else if r.status == Status::Pass && sent.latency > config.timeout / 2 {
        r.status = Status::Warn;
        r.seen = format!(
            "{} in {ms}ms: slower than half the {}s timeout",
            sent.outcome,
            config.timeout.as_secs_f64()
        );
    }
    r.duration = sent.latency;
    r
}

fn expect_rejected(id: &str, clause: &str, what: &str, sent: &Sent) -> CaseResult {
    let expected = format!("a request {what} is rejected with a 4xx (401 or 403)");
    let mut r = match &sent.outcome {
        // Redirected elsewhere (a login page, say) as a bodiless GET: the forged
        // event never got in, but nor was it clearly refused.
        Outcome::Status { code } if (200..300).contains(code) && sent.downgraded.is_some() => {
            CaseResult::new(
                id,
                clause,
                Status::Warn,
                expected,
                format!(
                    "redirected with a {} to a page that answered {}: the POST's body was dropped on the way, so no forged event got in; but answer 401 rather than redirect",
                    sent.downgraded.unwrap_or_default(),
                    sent.outcome
                ),
            )
        }
        Outcome::Status { code } if (400..500).contains(code) => CaseResult::new(
            id,
            clause,
            Status::Pass,
            expected,
            format!("rejected with {}", sent.outcome),
        ),
        Outcome::Status { code } if (200..300).contains(code) => CaseResult::new(
            id,
            clause,
            Status::Fail,
            expected,
            format!(
                "accepted with {}: anyone who knows your URL can post forged events",
                sent.outcome
            ),
        ),
        other => CaseResult::new(
            id,
            clause,
            Status::Fail,
            expected,
            format!("{other}: not a clear rejection; answer 401 to requests you cannot verify"),
        ),
    };
    r.duration = sent.latency;
    r
}

fn latency_case(latencies: &[(String, Option<Duration>)], timeout: Duration) -> CaseResult {
    let expected = format!(
        "every answer within the {}s timeout (a warning past half of it)",
        timeout.as_secs_f64()
    );
    if latencies.is_empty() {
        return CaseResult::new("latency", "S18", Status::Skip, expected, "nothing was sent");
    }
    let timed: Vec<(&str, Duration)> = latencies
        .iter()
        .filter_map(|(id, d)| d.map(|d| (id.as_str(), d)))
        .collect();
    let unanswered = latencies.len() - timed.len();
    let Some(&(slowest_id, slowest)) = timed.iter().max_by_key(|(_, d)| *d) else {
        return CaseResult::new(
            "latency",
            "S18",
            Status::Fail,
            expected,
            format!(
                "none of the {} requests got a whole answer (connection refused or reset, or the answer broke off), so there is no latency to judge; Skilljar retries such deliveries, then deactivates (S18)",
                latencies.len()
            ),
        );
    };
    let mut sorted: Vec<Duration> = timed.iter().map(|(_, d)| *d).collect();
    sorted.sort();
    let median = sorted[sorted.len() / 2];
    let mut seen = format!(
        "slowest {}ms ({slowest_id}), median {}ms over {} requests",
        slowest.as_millis(),
        median.as_millis(),
        timed.len()
    );
    if unanswered > 0 {
        seen.push_str(&format!(
            " ({unanswered} more got no answer and are not timed)"
        ));
    }
    let status = if slowest >= timeout || slowest >= SKILLJAR_TIMEOUT {
        Status::Fail
    } else if slowest > timeout / 2 {
        Status::Warn
    } else {
        Status::Pass
    };
    let seen = if slowest >= timeout {
        format!("{seen}: Skilljar gives up at the timeout and retries (S18)")
    } else if slowest >= SKILLJAR_TIMEOUT {
        format!("{seen}: {}", too_slow_for_skilljar())
    } else {
        seen
    };
    let mut r = CaseResult::new("latency", "S18", status, expected, seen);
    r.duration = slowest;
    r
}
