//! `hookjar simulate`: the reference dispatcher against an in-process mock receiver
//! with a script, in virtual time; the timeline of one delivery as the dispatcher
//! logged it (X2), and the webhook's end state.
//!
//! Must run on a tokio runtime whose clock is paused ([`crate::virtual_runtime`]): the
//! 50-hour life-cycle of `503` forever then takes well under a second.

use std::time::Duration;

use hookjar_core::payload::parse_timestamp;
use hookjar_core::verdict::human_duration;
use hookjar_core::{EventType, RetryPolicy};
use hookjar_dispatch::{Clock, Config, Dispatcher, StoreConfig};
use hookjar_mock::MockReceiver;
use serde::Serialize;
use serde_json::{Value, json};

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimulateConfig {
    /// The receiver's script, e.g. `503*3,200`.
    pub script: String,
    /// The event emitted.
    pub event_type: EventType,
    /// The dispatcher's retry policy.
    pub policy: RetryPolicy,
    /// The dispatcher's request timeout.
    pub timeout: Duration,
}

impl Default for SimulateConfig {
    fn default() -> Self {
        SimulateConfig {
            script: "200".into(),
            event_type: EventType::CourseEnrollment,
            policy: RetryPolicy::default(),
            timeout: Duration::from_secs(10),
        }
    }
}

/// One POST of the timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineAttempt {
    /// 0 for the first POST.
    pub attempt: u32,
    /// Virtual seconds since the first POST.
    pub at_s: Value,
    /// The HTTP status, or null (reset, timeout, garbage…).
    pub status: Option<u16>,
    /// The transport error, when there was no status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `delivered`, `retry` or `deactivate`.
    pub verdict: String,
    /// The wait before the next attempt, after a `retry`.
    pub next_delay_s: Option<Value>,
    /// The dispatcher's words for it.
    pub detail: String,
}

/// The webhook and delivery at the end.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FinalState {
    pub active: bool,
    pub deactivate_reason: Option<String>,
    /// `delivered`, `failed` or `dropped`.
    pub delivery: String,
}

/// The whole simulation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timeline {
    pub script: String,
    pub event_type: String,
    pub attempts: Vec<TimelineAttempt>,
    #[serde(rename = "final")]
    pub final_state: FinalState,
}

/// The simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("invalid script: {0}")]
    Script(#[from] hookjar_core::script::ScriptError),
    #[error("cannot start the mock receiver: {0}")]
    Mock(#[from] hookjar_mock::StartError),
    #[error("cannot start the dispatcher: {0}")]
    Dispatcher(#[from] hookjar_dispatch::StartError),
    #[error("the dispatcher's API answered unexpectedly: {0}")]
    Api(String),
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error(
        "the delivery had not ended after {0} of virtual time; a script that hangs longer than the timeout on every retry can take that long"
    )]
    NotFinished(String),
}

const KEY: &str = "hookjar-simulate";
/// A fixed virtual start, so timelines are reproducible.
const ANCHOR_MICROS: i64 = 1_767_225_600_000_000; // 2026-01-01T00:00:00Z

/// Runs the simulation (on a paused-clock runtime).
pub async fn simulate(config: &SimulateConfig) -> Result<Timeline, SimulateError> {
    let mock = MockReceiver::builder()
        .script(&config.script)?
        .start()
        .await?;
    let dispatcher = Dispatcher::start(
        Config {
            api_key: KEY.into(),
            policy: config.policy,
            timeout: config.timeout,
            store: StoreConfig::InMemory,
            clock: Some(Clock::anchored(
                ANCHOR_MICROS,
                tokio::time::Instant::now(),
                1.0,
            )),
            ..Config::default()
        },
        "127.0.0.1:0",
    )
    .await?;
    let base = dispatcher.url();
    let client = reqwest::Client::builder().no_proxy().build()?;
    let call = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut req = client
            .request(method, format!("{base}{path}"))
            .basic_auth(KEY, Some(""));
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move {
            let resp = req.send().await?;
            let code = resp.status().as_u16();
            let v: Value = resp.json().await.unwrap_or(Value::Null);
            Ok::<_, reqwest::Error>((code, v))
        }
    };

    let (code, hook) = call(
        reqwest::Method::POST,
        "/v1/webhooks",
        Some(
            json!({"target_url": format!("{}/hook", mock.url()), "event_type": config.event_type}),
        ),
    )
    .await?;
    let id = hook["id"].as_str().map(str::to_owned).ok_or_else(|| {
        SimulateError::Api(format!("creating the webhook answered {code}: {hook}"))
    })?;
    let (code, emitted) = call(
        reqwest::Method::POST,
        "/v1/events",
        Some(json!({"event_type": config.event_type})),
    )
    .await?;
    if code != 202 {
        return Err(SimulateError::Api(format!(
            "emit answered {code}: {emitted}"
        )));
    }

    // Follow the delivery log until the delivery ends, sleeping (virtually) until its
    // next attempt is due.
    let limit = config.policy.total()
        + config.timeout * (config.policy.max_retries + 1)
        + Duration::from_secs(3600);
    let started = tokio::time::Instant::now();
    let delivery = loop {
        let (code, log) = call(
            reqwest::Method::GET,
            &format!("/v1/webhooks/{id}/deliveries"),
            None,
        )
        .await?;
        if code != 200 {
            return Err(SimulateError::Api(format!(
                "the delivery log answered {code}: {log}"
            )));
        }
        let d = log["results"][0].clone();
        let state = d["state"].as_str().unwrap_or("");
        if matches!(state, "delivered" | "failed" | "dropped") {
            break d;
        }
        if started.elapsed() > limit {
            return Err(SimulateError::NotFinished(human_duration(limit)));
        }
        // Sleep (virtually) until the next attempt is due; while one is in flight,
        // for as long as it can last (the timeout). Every poll is real work (an HTTP
        // call and a store query on the blocking pool, during which tokio cannot
        // advance its paused clock), so the log is read a few times per attempt, never
        // on a short period: the timeline comes from the log, not from these polls.
        let wait = d["next_attempt_at"]
            .as_str()
            .and_then(|t| parse_timestamp(t).ok())
            .map(|due| {
                let due_us = (due.unix_timestamp_nanos() / 1000) as i64;
                let now_us = ANCHOR_MICROS + started_elapsed_us(started);
                Duration::from_micros(due_us.saturating_sub(now_us).max(0) as u64)
            })
            .unwrap_or(config.timeout);
        tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
    };
    let (_, hook) = call(reqwest::Method::GET, &format!("/v1/webhooks/{id}"), None).await?;
    dispatcher.shutdown().await;

    let attempts = delivery["attempts"].as_array().cloned().unwrap_or_default();
    let first_at = attempts
        .first()
        .and_then(|a| a["at"].as_str())
        .and_then(|t| parse_timestamp(t).ok());
    let timeline = attempts
        .iter()
        .map(|a| {
            let at = a["at"].as_str().and_then(|t| parse_timestamp(t).ok());
            let at_s = match (first_at, at) {
                (Some(f), Some(t)) => secs_value((t - f).unsigned_abs()),
                _ => Value::Null,
            };
            // The back-off runs from the end of the attempt (its start plus latency).
            let latency =
                time::Duration::seconds_f64(a["latency_ms"].as_f64().unwrap_or(0.0) / 1000.0);
            let next_delay_s = match (
                at,
                a["next_attempt_at"]
                    .as_str()
                    .and_then(|t| parse_timestamp(t).ok()),
            ) {
                (Some(t), Some(n)) => {
                    Some(secs_value(round_ms((n - (t + latency)).unsigned_abs())))
                }
                _ => None,
            };
            TimelineAttempt {
                attempt: a["attempt"].as_u64().unwrap_or(0) as u32,
                at_s,
                status: a["status"].as_u64().map(|s| s as u16),
                error: a["error"].as_str().map(str::to_owned),
                verdict: a["verdict"].as_str().unwrap_or("").to_owned(),
                next_delay_s,
                detail: a["detail"].as_str().unwrap_or("").to_owned(),
            }
        })
        .collect();
    Ok(Timeline {
        script: config.script.clone(),
        event_type: config.event_type.as_str().to_owned(),
        attempts: timeline,
        final_state: FinalState {
            active: hook["active"].as_bool().unwrap_or(false),
            deactivate_reason: hook["deactivate_reason"].as_str().map(str::to_owned),
            delivery: delivery["state"].as_str().unwrap_or("").to_owned(),
        },
    })
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis((d.as_secs_f64() * 1000.0).round() as u64)
}

fn started_elapsed_us(started: tokio::time::Instant) -> i64 {
    // The dispatcher's clock was anchored at (about) the same tokio instant.
    started.elapsed().as_micros() as i64
}

/// Whole seconds as an integer, otherwise a float rounded to the millisecond.
fn secs_value(d: Duration) -> Value {
    if d.subsec_millis() == 0 {
        Value::from(d.as_secs())
    } else {
        Value::from((d.as_secs_f64() * 1000.0).round() / 1000.0)
    }
}

impl Timeline {
    /// The timeline as a table for people.
    pub fn to_table(&self) -> String {
        let mut out = format!(
            "simulate: receiver script {:?}, one {} event (virtual time)\n",
            self.script, self.event_type
        );
        out.push_str("attempt  at         answer        verdict     next\n");
        for a in &self.attempts {
            let at = value_secs(&a.at_s).map(human_duration).unwrap_or_default();
            let answer = match (a.status, &a.error) {
                (Some(s), _) => format!("HTTP {s}"),
                (None, Some(e)) => e.split(':').next().unwrap_or(e).to_owned(),
                _ => "-".into(),
            };
            let next = a
                .next_delay_s
                .as_ref()
                .and_then(value_secs)
                .map(|d| format!("in {}", human_duration(d)))
                .unwrap_or_default();
            out.push_str(&format!(
                "{:>7}  {:<9}  {:<12}  {:<10}  {}\n",
                a.attempt, at, answer, a.verdict, next
            ));
        }
        out.push_str(&format!(
            "end: delivery {}; webhook active {}{}\n",
            self.final_state.delivery,
            self.final_state.active,
            self.final_state
                .deactivate_reason
                .as_ref()
                .map(|r| format!(", deactivate_reason {r}"))
                .unwrap_or_default()
        ));
        out
    }
}

fn value_secs(v: &Value) -> Option<Duration> {
    v.as_f64().and_then(|s| Duration::try_from_secs_f64(s).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs one simulation on its own paused runtime, in a thread with a generous
    /// real-time bound: a guard against hanging, not a timing assertion.
    fn run(script: &str, timeout: Duration, max_retries: u32) -> Timeline {
        let config = SimulateConfig {
            script: script.into(),
            timeout,
            policy: RetryPolicy {
                max_retries,
                ..RetryPolicy::default()
            },
            ..SimulateConfig::default()
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = crate::virtual_runtime().unwrap();
            let _ = tx.send(rt.block_on(simulate(&config)).map_err(|e| e.to_string()));
        });
        rx.recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("simulate --script {script} did not finish"))
            .unwrap()
    }

    fn at_s(t: &Timeline) -> Vec<f64> {
        t.attempts
            .iter()
            .map(|a| a.at_s.as_f64().unwrap())
            .collect()
    }

    const H: u64 = 3600;

    #[test]
    fn hang_runs_into_a_one_hour_timeout_in_virtual_time() {
        let t = run("hang", Duration::from_secs(H), 1);
        assert_eq!(at_s(&t), [0.0, (H + 2) as f64], "{t:?}");
        assert!(t.attempts.iter().all(
            |a| a.status.is_none() && a.error.as_deref().is_some_and(|e| e.contains("timeout"))
        ));
        assert_eq!(
            t.final_state.deactivate_reason.as_deref(),
            Some("RETRY_COUNT")
        );
    }

    #[test]
    fn a_day_long_delay_under_a_longer_timeout_is_answered() {
        let t = run("503@24h", Duration::from_secs(25 * H), 0);
        assert_eq!(t.attempts.len(), 1, "{t:?}");
        assert_eq!(t.attempts[0].status, Some(503));
        assert_eq!(t.attempts[0].verdict, "deactivate");
        assert_eq!(
            t.final_state.deactivate_reason.as_deref(),
            Some("RETRY_COUNT")
        );
    }

    /// The whole 61-attempt life-cycle with a 100-hour timeout: about 250 days of
    /// virtual time.
    #[test]
    fn a_hundred_hour_timeout_on_every_attempt() {
        let t = run("hang", Duration::from_secs(100 * H), 60);
        assert_eq!(t.attempts.len(), 61);
        let policy = RetryPolicy::default();
        let mut expected = 0;
        for a in &t.attempts {
            assert_eq!(a.at_s, json!(expected), "attempt {}", a.attempt);
            expected += 100 * H;
            if let Some(d) = policy.delay_before_retry(a.attempt + 1) {
                expected += d.as_secs();
            }
        }
        assert_eq!(t.attempts[60].at_s, json!(60 * 100 * H + 180_494));
        assert_eq!(t.final_state.delivery, "failed");
    }

    #[test]
    fn a_delay_past_the_timeout_is_a_timeout_on_every_attempt() {
        let t = run("200@11s", Duration::from_secs(10), 60);
        assert_eq!(t.attempts.len(), 61);
        assert!(t.attempts.iter().all(|a| a.status.is_none()));
        assert_eq!(t.attempts[1].at_s, json!(12));
        assert_eq!(t.attempts[60].at_s, json!(60 * 10 + 180_494));
        assert_eq!(
            t.final_state.deactivate_reason.as_deref(),
            Some("RETRY_COUNT")
        );
    }

    #[test]
    fn a_delay_within_the_timeout_is_waited_for() {
        let t = run("200@9s", Duration::from_secs(10), 60);
        assert_eq!(t.attempts.len(), 1, "{t:?}");
        assert_eq!(t.attempts[0].status, Some(200));
        assert_eq!(t.final_state.delivery, "delivered");
    }
}
