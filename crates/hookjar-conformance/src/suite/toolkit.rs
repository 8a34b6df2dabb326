//! Toolkit extension cases: X2 delivery log, X5 identical bytes — and, from the same
//! retried delivery, S7.every-attempt (S7–S9 hold on every attempt, not only the
//! first).

use std::collections::BTreeSet;
use std::time::Duration;

use hookjar_core::EventType;
use serde_json::{Value, json};

use super::CaseOutput;
use super::context::{Ctx, header};
use crate::report::CaseResult;

pub(super) async fn x5_same_bytes(ctx: &mut Ctx) -> CaseOutput {
    let created = ctx
        .create(json!({
            "target_url": ctx.mock_url("/x5"),
            "event_type": "VILT_EVENT_REGISTRATION",
            "basic_auth_username": "hookjar-retry",
            "basic_auth_password": "hookjar-retry-pass",
            "additional_headers": {"x-hookjar-retry": "kept"}
        }))
        .await?;
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    ctx.emit(EventType::ViltEventRegistration, json!({}))
        .await?;
    let reqs = ctx.wait(3, Duration::from_secs(60)).await;
    let digests: BTreeSet<String> = reqs.iter().map(|r| r.digest.to_string()).collect();
    let bodies_equal = reqs.windows(2).all(|w| w[0].body == w[1].body);
    let same = CaseResult::check(
        "X5.same-bytes",
        "X5,S11",
        reqs.len() == 3 && digests.len() == 1 && bodies_equal,
        "503, 503, 200: three POSTs of identical bytes (one digest)",
        format!("{} POSTs, {} distinct digest(s)", reqs.len(), digests.len()),
    );
    let auth = hookjar_core::request::basic_auth_header("hookjar-retry", "hookjar-retry-pass")
        .unwrap_or_default();
    let mut bad = Vec::new();
    for (i, r) in reqs.iter().enumerate() {
        let mut missing = Vec::new();
        if r.method != "POST" {
            missing.push(format!("method {}", r.method));
        }
        if header(r, "content-type") != Some("application/json") {
            missing.push(format!("Content-Type {:?}", header(r, "content-type")));
        }
        if header(r, "user-agent") != Some("skilljar") {
            missing.push(format!("User-Agent {:?}", header(r, "user-agent")));
        }
        if header(r, "authorization") != Some(auth.as_str()) {
            missing.push(format!("Authorization {:?}", header(r, "authorization")));
        }
        if header(r, "x-hookjar-retry") != Some("kept") {
            missing.push(format!(
                "x-hookjar-retry {:?}",
                header(r, "x-hookjar-retry")
            ));
        }
        if !missing.is_empty() {
            bad.push(format!("attempt {}: {}", i + 1, missing.join(", ")));
        }
    }
    let every = CaseResult::check(
        "S7.every-attempt",
        "S7,S8,S9",
        reqs.len() == 3 && bad.is_empty(),
        "every attempt of a retried delivery is a POST with Content-Type, User-Agent, Authorization and the additional headers",
        if bad.is_empty() {
            format!("{} attempt(s), each with all of them", reqs.len())
        } else {
            bad.join("; ")
        },
    );
    // X2: the log shows the delivery with its three attempts (polled: a dispatcher may
    // log an attempt only when it completes); redeliver resends the bytes.
    let (code, deliveries) = ctx.until_attempts(&id, 3, Duration::from_secs(10)).await?;
    let first = deliveries.first().cloned().unwrap_or(Value::Null);
    let attempts = first["attempts"].as_array().map_or(0, Vec::len);
    let delivery_id = first["id"].as_str().unwrap_or_default().to_owned();
    ctx.mock.clear();
    let (rcode, rv) = ctx
        .api
        .post_empty(&format!("/v1/deliveries/{delivery_id}/redeliver"))
        .await?;
    let again = ctx.wait(1, Duration::from_secs(10)).await;
    let same_digest = again
        .first()
        .is_some_and(|r| digests.contains(&r.digest.to_string()));
    let log = CaseResult::check(
        "X2.delivery-log",
        "X2",
        code == 200 && attempts == 3 && (200..300).contains(&rcode) && same_digest,
        "the delivery log lists the delivery with its 3 attempts; redeliver resends the same bytes",
        format!(
            "{code}: {} deliveries, first with {attempts} attempts; redeliver → {rcode} {rv}; resent same digest: {same_digest}",
            deliveries.len()
        ),
    );
    // Each attempt says when, what came back, how long it took, what it led to and
    // when the next is due (X2; the field names of docs/dispatcher.md). A dispatcher
    // may log an attempt when it starts and its outcome when it ends: wait (up to
    // 10 s of dispatcher time) until the three show their outcomes.
    let answered = |a: &Value| a["status"].is_u64() || a["error"].is_string();
    let deadline = tokio::time::Instant::now()
        + ctx.time.wait(Duration::from_secs(10))
        + Duration::from_secs(2);
    let mut logged = first.clone();
    loop {
        let done = logged["attempts"]
            .as_array()
            .is_some_and(|a| a.len() >= 3 && a.iter().all(answered));
        if done || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (_, now) = ctx.deliveries(&id).await?;
        if let Some(d) = now.into_iter().find(|d| d["id"] == first["id"]) {
            logged = d;
        }
    }
    let mut thin = Vec::new();
    for (n, a) in logged["attempts"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let mut missing = Vec::new();
        if !a["at"].is_string() {
            missing.push("at");
        }
        if !answered(a) {
            missing.push("status or error");
        }
        if !a["latency_ms"].is_number() {
            missing.push("latency_ms");
        }
        if !a["verdict"].is_string() {
            missing.push("verdict");
        }
        if a.get("next_attempt_at").is_none() || (n < 2 && !a["next_attempt_at"].is_string()) {
            missing.push("next_attempt_at");
        }
        if !missing.is_empty() {
            thin.push(format!("attempt {n} lacks {}", missing.join(", ")));
        }
    }
    let fields = CaseResult::check(
        "X2.attempt-fields",
        "X2",
        attempts == 3 && thin.is_empty(),
        "each attempt in the log has its time (at), status or error, latency_ms, verdict and next_attempt_at (a time for the two retried 503s)",
        if thin.is_empty() {
            format!("{attempts} attempts, each complete")
        } else {
            thin.join("; ")
        },
    );
    Ok(vec![same, every, log, fields])
}
