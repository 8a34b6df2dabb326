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
//! - `late-retry` — the probe type stamped 50.1 h ago (the retry life-cycle, S15), sent
//!   after newer events, must get 2xx: Skilljar's last retry resends the first bytes,
//!   timestamp included, and no order between events is promised (S19), so an endpoint
//!   that refuses old or out-of-order timestamps deactivates on a late retry.
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
//! case reports both sends' times. The probes after the events (auth, headers,
//! `duplicate`, `unknown-fields`, `late-retry`) send the first type the endpoint
//! accepted, so that a refused type is not blamed on them.

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
    let sender = Sender::new(config.timeout, MAX_REDIRECTS)?;
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
        latencies.push((
            id.clone(),
            Some(sent.latency).filter(|_| answered(&sent.outcome)),
        ));
        let r = expect_accepted(&id, "S10,S17", &sent, config);
        accepted.push(r.status != Status::Fail);
        push(&mut report, progress, r);
    }
    progress.start("ping");
    let sent = sender
        .send(&config.request(Event::ping(now()).to_payload()))
        .await;
    latencies.push((
        "ping".into(),
        Some(sent.latency).filter(|_| answered(&sent.outcome)),
    ));
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

    // Forged requests must be refused, when the webhook is configured to carry proof.
    // The probes below send a type the endpoint accepted above, so that a refusal of
    // the type itself is not taken for what a probe looks at.
    let probe_type = config
        .types
        .iter()
        .zip(&accepted)
        .find(|(_, ok)| **ok)
        .map(|(t, _)| *t)
        .or_else(|| config.types.first().copied())
        .unwrap_or(EventType::CourseEnrollment);
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
            let payload = Event::fixture(probe_type, now()).to_payload();
            let req = DeliveryRequest::new(config.url.clone(), u, p, &config.headers, payload);
            let sent = sender.send(&req).await;
            let r = expect_rejected(id, "S8", what, &sent);
            push(&mut report, progress, r);
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
            let payload = Event::fixture(probe_type, now()).to_payload();
            let req = DeliveryRequest::new(config.url.clone(), &u, &p, &headers, payload);
            let sent = sender.send(&req).await;
            let r = expect_rejected(&id, "S9", &what, &sent);
            push(&mut report, progress, r);
        }
    }

    // A retry after a lost answer resends the same bytes: both must be accepted.
    progress.start("duplicate");
    let payload = Event::fixture(probe_type, now()).to_payload();
    let req = config.request(payload);
    let first = sender.send(&req).await;
    let second = sender.send(&req).await;
    for sent in [&first, &second] {
        latencies.push((
            "duplicate".into(),
            Some(sent.latency).filter(|_| answered(&sent.outcome)),
        ));
    }
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
                &second
            } else {
                &first
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
    push(&mut report, progress, r);

    // Unknown keys must be tolerated.
    progress.start("unknown-fields");
    let mut event = Event::fixture(probe_type, now());
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
    latencies.push((
        "unknown-fields".into(),
        Some(sent.latency).filter(|_| answered(&sent.outcome)),
    ));
    let r = expect_accepted("unknown-fields", "S11", &sent, config);
    push(&mut report, progress, r);

    // Skilljar's last retry resends the first attempt's bytes, timestamp included,
    // 50 hours later (S11, S15), and promises no order between events (S19): an old
    // timestamp, after newer events, must be accepted too.
    progress.start("late-retry");
    let span = config.policy.total();
    let sent_at = now() - span;
    let sent = sender
        .send(&config.request(Event::fixture(probe_type, sent_at).to_payload()))
        .await;
    latencies.push((
        "late-retry".into(),
        Some(sent.latency).filter(|_| answered(&sent.outcome)),
    ));
    let mut r = expect_accepted("late-retry", "S11,S15,S19", &sent, config);
    r.expected = format!(
        "2xx for an event stamped {} ago, sent after newer ones: the last retry of an event resends its first bytes, timestamp included",
        hookjar_core::verdict::human_duration(span)
    );
    if r.status == Status::Fail && sent.downgraded.is_none() && !is_2xx(&sent.outcome) {
        r.seen = format!(
            "{}; refusing old or out-of-order timestamps (replay protection, ordering) turns Skilljar's own late retries into a deactivation: accept them, and deduplicate by content instead (X5)",
            r.seen
        );
    }
    push(&mut report, progress, r);

    // Latency against the timeout.
    let r = latency_case(&latencies, config.timeout);
    push(&mut report, progress, r);

    report.duration = started.elapsed();
    Ok(report)
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
