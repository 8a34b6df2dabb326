//! Toolkit extension cases: X2 delivery log, X5 identical bytes — and, from the same
//! retried delivery, S7.every-attempt (S7–S9 hold on every attempt, not only the
//! first).

use std::collections::BTreeSet;
use std::time::Duration;

use hookjar_core::EventType;
use serde_json::{Value, json};

use super::context::{Ctx, header};
use super::{CaseOutput, TimeMode};
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
    // Another webhook, of a type this case never emits: its log stays empty.
    let other = ctx.hook("/ok", Some(EventType::CourseCompletion)).await?;
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
    // The journal was cleared, so the receiver answers the redelivery 503, 503, 200
    // again: a redelivery is a delivery like any other, retried (X2, S14).
    let again = ctx.wait(3, Duration::from_secs(60)).await;
    let same_digest = again
        .first()
        .is_some_and(|r| digests.contains(&r.digest.to_string()));
    let resent_headers = again.first().is_some_and(|r| {
        header(r, "authorization") == Some(auth.as_str())
            && header(r, "x-hookjar-retry") == Some("kept")
    });
    let resent_same = again
        .iter()
        .filter(|r| digests.contains(&r.digest.to_string()))
        .count();
    let log = CaseResult::check(
        "X2.delivery-log",
        "X2",
        code == 200
            && attempts == 3
            && (200..300).contains(&rcode)
            && same_digest
            && resent_headers,
        "the delivery log lists the delivery with its 3 attempts; redeliver resends the same bytes, with the webhook's Authorization and additional headers",
        format!(
            "{code}: {} deliveries, first with {attempts} attempts; redeliver → {rcode} {rv}; resent same digest: {same_digest}; {}",
            deliveries.len(),
            again
                .first()
                .map(|r| format!(
                    "Authorization {:?}, x-hookjar-retry {:?}",
                    header(r, "authorization"),
                    header(r, "x-hookjar-retry")
                ))
                .unwrap_or_else(|| "nothing resent".into())
        ),
    );
    let redeliver_retried = CaseResult::check(
        "X2.redeliver-retried",
        "X2,S14",
        resent_same == 3,
        "a redelivery answered 503 is retried like any delivery: 503, 503, 200 → three POSTs of the same bytes",
        format!("{resent_same} POST(s) of the redelivered bytes"),
    );
    let (ocode, others) = ctx.deliveries(&other).await?;
    let own = CaseResult::check(
        "X2.own-deliveries",
        "X2",
        ocode == 200 && others.is_empty() && deliveries.len() == 1,
        "a webhook's delivery log lists its own deliveries only: 1 for the webhook the event went to, none for another webhook that got nothing",
        format!(
            "the event's webhook: {} delivery(ies); the other webhook: {ocode}, {} delivery(ies)",
            deliveries.len(),
            others.len()
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
    let next_at = next_attempt_times(ctx, &logged);
    // S3: "Secrets never appear in logs", read as covering the delivery log too: no
    // password, no Basic credentials (in clear or base64) in the log's text.
    let (_, text) = ctx
        .api
        .get(&format!("/v1/webhooks/{id}/deliveries"))
        .await?;
    let b64 = auth.trim_start_matches("Basic ").to_owned();
    let leaks: Vec<&str> = [
        ("the password", "hookjar-retry-pass"),
        ("the base64 credentials", b64.as_str()),
    ]
    .iter()
    .filter(|(_, secret)| !secret.is_empty() && text.contains(secret))
    .map(|(what, _)| *what)
    .collect();
    let secrets = CaseResult::check(
        "X2.no-secrets",
        "X2,S3",
        leaks.is_empty() && !text.is_empty(),
        "the delivery log shows neither the webhook's password nor its Basic credentials (SPEC S3 \"Secrets never appear in logs\", read as covering the X2 log)",
        if leaks.is_empty() {
            format!("{} bytes of log, no secret in them", text.len())
        } else {
            format!("the log shows {}", leaks.join(" and "))
        },
    );
    Ok(vec![
        same,
        every,
        log,
        fields,
        redeliver_retried,
        own,
        secrets,
        next_at,
    ])
}

/// X2: each retried attempt's `next_attempt_at` is when the next attempt was due:
/// at least the back-off after the attempt's `at` (the wait counts from the answer,
/// which comes after the attempt starts: S14), and the next attempt's `at` no earlier
/// (S19) and not much later. Both are dispatcher time (X3). In virtual time "not much
/// later" is 100 ms; at a scale N a due attempt starts some wall milliseconds late,
/// N times that in dispatcher time, so the tolerance is 0.5 s + 100 ms × N, and the
/// case is inconclusive when that does not resolve the back-off (above ×14); the lower
/// bound holds at any scale.
fn next_attempt_times(ctx: &Ctx, delivery: &Value) -> CaseResult {
    let parse = |v: &Value| {
        v.as_str().and_then(|s| {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
        })
    };
    let expected = "each retried attempt's next_attempt_at is when the next attempt was due: at least the back-off after its at (2 s, then 4 s), and the next attempt's at neither earlier nor much later";
    let attempts = delivery["attempts"].as_array().cloned().unwrap_or_default();
    let (early, late) = match ctx.time {
        TimeMode::Virtual => (Duration::from_millis(100), Duration::from_millis(100)),
        TimeMode::Scaled(_) => {
            let t = Duration::from_millis(500) + ctx.time.observed(Duration::from_millis(100));
            (t, t)
        }
    };
    let mut bad = Vec::new();
    let mut seen = Vec::new();
    let mut unresolved = false;
    for k in 0..attempts.len().saturating_sub(1) {
        let delay = ctx
            .policy
            .delay_before_retry(k as u32 + 1)
            .unwrap_or_default();
        let (Some(at), Some(next), Some(then)) = (
            parse(&attempts[k]["at"]),
            parse(&attempts[k]["next_attempt_at"]),
            parse(&attempts[k + 1]["at"]),
        ) else {
            bad.push(format!(
                "attempt {k}: at/next_attempt_at/next at are not RFC 3339 times"
            ));
            continue;
        };
        let wait = (next - at).as_seconds_f64();
        let off = (then - next).as_seconds_f64();
        seen.push(format!(
            "attempt {k}: next_attempt_at − at {wait:.3} s, next at − next_attempt_at {off:+.3} s"
        ));
        if wait < delay.as_secs_f64() - 0.001 {
            bad.push(format!(
                "attempt {k}: next_attempt_at is {wait:.3} s after at, under the {} s back-off",
                delay.as_secs_f64()
            ));
        } else if off < -early.as_secs_f64() || off > late.as_secs_f64() {
            bad.push(format!(
                "attempt {k}: the next attempt came {off:+.3} s from its next_attempt_at (tolerance −{:.1}/+{:.1} s)",
                early.as_secs_f64(),
                late.as_secs_f64()
            ));
        }
        unresolved |= late >= delay;
    }
    let detail = if bad.is_empty() {
        seen.join("; ")
    } else {
        bad.join("; ")
    };
    if attempts.len() < 3 {
        return CaseResult::check(
            "X2.next-attempt-at",
            "X2",
            false,
            expected,
            format!("{} attempt(s) logged, 3 expected", attempts.len()),
        );
    }
    if !bad.is_empty() {
        return CaseResult::check("X2.next-attempt-at", "X2", false, expected, detail);
    }
    if unresolved {
        return CaseResult::inconclusive(
            "X2.next-attempt-at",
            "X2",
            expected,
            format!(
                "{detail}; at ×{} a due attempt's lateness is too coarse in dispatcher time (±{:.0} s) to tell whether next_attempt_at is when the 2 s and 4 s retries were due (the lower bound was checked)",
                ctx.time.scale(),
                late.as_secs_f64()
            ),
            Some(14.0),
        );
    }
    CaseResult::check("X2.next-attempt-at", "X2", true, expected, detail)
}
