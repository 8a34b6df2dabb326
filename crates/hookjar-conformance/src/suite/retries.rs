//! Retry and deactivation cases: S14 back-off, S15 retry limit, S16 4xx, S17 2xx,
//! S18 other outcomes, S19 guarantees.
//!
//! Gaps are checked with [`super::timing`]: exact in virtual time, in wall time with a
//! calibrated tolerance against a remote dispatcher; a gap the time scale cannot
//! resolve makes the case that claims it inconclusive.

use std::collections::BTreeMap;
use std::time::Duration;

use hookjar_core::verdict::human_duration;
use hookjar_core::{EventType, RetryPolicy};
use serde_json::json;

use hookjar_mock::{RecordedRequest, Script, ScriptUpdate};

use super::context::{Ctx, fmt_secs};
use super::timing::{self, Gap, Timing};
use super::{CaseError, CaseOutput, TimeMode};
use crate::report::{CaseResult, Status};

/// The longest the exhaustion case may take in wall time before it is reported
/// inconclusive instead of run.
const EXHAUSTION_WALL_BUDGET: Duration = Duration::from_secs(15 * 60);

/// The dispatcher time of the first `k` back-off waits.
fn cumulative(policy: &RetryPolicy, k: u32) -> Duration {
    (1..=k).filter_map(|n| policy.delay_before_retry(n)).sum()
}

/// How many 503s S14 answers: 5 in virtual time; against a remote dispatcher, as many
/// as fit in the wall time of the first five or 3 s (whichever is longer), so that at a
/// high scale the later, resolvable gaps (and the cap) are observed.
pub(super) fn s14_retries(time: TimeMode, policy: &RetryPolicy, _quick: bool) -> u32 {
    let five = 5.min(policy.max_retries);
    let TimeMode::Scaled(n) = time else {
        return five;
    };
    let budget = time
        .wait(cumulative(policy, five))
        .max(Duration::from_secs(3))
        .mul_f64(n);
    (five..=policy.max_retries)
        .take_while(|&k| cumulative(policy, k) <= budget)
        .last()
        .unwrap_or(five)
}

/// How many attempts of S14.wait-after-answer answer slowly (one late span of a
/// loaded machine among them is not taken for a departure; see [`timing`]).
const SLOW_ANSWERS: u32 = 3;

/// S14.wait-after-answer's plan: the first attempt (0-based) that answers slowly, how
/// long each slow answer takes (wall time), and how many attempts answer slowly.
/// `None` when no back-off of the policy is resolvable at this scale within 10 s of
/// wall time.
fn answer_plan(time: TimeMode, policy: &RetryPolicy) -> Option<(u32, Duration, u32)> {
    let slow = |a: u32| SLOW_ANSWERS.min(policy.max_retries - a);
    if time == TimeMode::Virtual {
        return (policy.max_retries > 0).then(|| (0, Duration::from_secs(5), slow(0)));
    }
    let r = timing::min_resolvable();
    (0..policy.max_retries)
        .take_while(|&a| time.wait(cumulative(policy, a)) <= Duration::from_secs(10))
        .find_map(|a| {
            let d = policy.delay_before_retry(a + 1)?;
            (time.wait(d) >= r).then(|| {
                let answer = time.wait(d).max(Duration::from_millis(200));
                let answer = Duration::from_millis(answer.as_millis() as u64 + 1);
                (a, answer, slow(a))
            })
        })
}

/// The mock script of S14.wait-after-answer.
pub(super) fn s14_answer_script(time: TimeMode, policy: &RetryPolicy) -> String {
    match answer_plan(time, policy) {
        None => "200".into(),
        Some((0, answer, k)) => format!("503@{}ms*{k},200", answer.as_millis()),
        Some((a, answer, k)) => format!("503*{a},503@{}ms*{k},200", answer.as_millis()),
    }
}

/// The result of a case whose claim rests on gaps: fail on any departure; otherwise
/// inconclusive when nothing (or, with `each_gap`, not every gap) was resolvable.
#[allow(clippy::too_many_arguments)]
fn timed(
    id: &str,
    clause: &str,
    ok: bool,
    t: &Timing,
    each_gap: bool,
    time: TimeMode,
    expected: String,
    seen: String,
) -> CaseResult {
    let seen = format!(
        "{seen}; {}{}",
        t.summary,
        t.mismatch
            .as_ref()
            .map(|m| format!(" — {m}"))
            .unwrap_or_default()
    );
    if !ok || t.mismatch.is_some() {
        return CaseResult::check(id, clause, false, expected, seen);
    }
    if !t.any_resolved || t.unresolved_region || (each_gap && !t.unresolved.is_empty()) {
        let note = if t.unresolved.is_empty() {
            "no span of the run was long enough to resolve".to_owned()
        } else {
            t.unresolved_note(time)
        };
        return CaseResult::inconclusive(
            id,
            clause,
            expected,
            format!("{seen}; not resolved: {note}"),
            t.max_scale(),
        );
    }
    CaseResult::check(id, clause, true, expected, seen)
}

/// Dispatcher time long enough for a retry a 4xx/2xx must not cause to show.
fn retry_window(ctx: &Ctx) -> Duration {
    ctx.policy
        .delay_before_retry(1)
        .unwrap_or(Duration::from_secs(2))
        * 2
        + Duration::from_secs(4)
}

pub(super) async fn s14_backoff(ctx: &mut Ctx) -> CaseOutput {
    let k = s14_retries(ctx.time, &ctx.policy, ctx.quick);
    let id = ctx.hook("/s14", Some(EventType::CourseCompletion)).await?;
    ctx.emit(EventType::CourseCompletion, json!({})).await?;
    let budget = cumulative(&ctx.policy, k) + Duration::from_secs(10);
    let total = k as usize + 1;
    let reqs = ctx.wait(total, budget).await;
    ctx.settle(
        ctx.policy
            .delay_before_retry(k + 1)
            .unwrap_or(Duration::from_secs(64)),
    )
    .await;
    let after = ctx.mock.requests().len();
    let hook = ctx.webhook(&id).await?;
    let gaps = Gap::schedule(&ctx.policy, 1, k);
    let t = ctx.timing(&reqs, &gaps);
    let expected: Vec<Duration> = gaps.iter().map(|g| g.delay).collect();
    let observed: Vec<Duration> = reqs
        .windows(2)
        .map(|w| ctx.time.observed(w[1].arrived.duration_since(w[0].arrived)))
        .collect();
    Ok(vec![timed(
        "S14.backoff",
        "S14",
        reqs.len() == total && after == total && hook["active"] == true,
        &t,
        true,
        ctx.time,
        format!(
            "503 ×{k} then 200: {total} POSTs with gaps {} s (each wait counted from the failed answer), then no more; webhook stays active",
            fmt_secs(&expected)
        ),
        format!(
            "{} POSTs (then {after}), gaps ≈ {} s; active {}",
            reqs.len(),
            fmt_secs(&observed),
            hook["active"]
        ),
    )])
}

pub(super) async fn s14_wait_after_answer(ctx: &mut Ctx) -> CaseOutput {
    let expected_text = "a 503 that takes a while to arrive: the next attempt comes the back-off after the answer, not after the attempt's start";
    let Some((a, answer, k)) = answer_plan(ctx.time, &ctx.policy) else {
        let first = ctx
            .policy
            .delay_before_retry(1)
            .unwrap_or(Duration::from_secs(2));
        let cap = ctx.policy.max_delay;
        return Ok(vec![CaseResult::inconclusive(
            "S14.wait-after-answer",
            "S14",
            expected_text,
            format!(
                "no back-off of the policy lasts {:.0} ms of wall time at ×{} (the longest, {} s, is {:.1} ms); not run",
                timing::min_resolvable().as_secs_f64() * 1000.0,
                ctx.time.scale(),
                cap.as_secs(),
                ctx.time.wait(cap).as_secs_f64() * 1000.0
            ),
            Some(timing::max_scale_for(cap.max(first))),
        )]);
    };
    ctx.hook("/s14-answer", Some(EventType::CourseEnrollment))
        .await?;
    ctx.emit(EventType::CourseEnrollment, json!({})).await?;
    let n = (a + k) as usize + 1;
    let budget =
        cumulative(&ctx.policy, a + k) + ctx.time.observed(answer) * k + Duration::from_secs(10);
    let reqs = ctx.wait(n, budget).await;
    let ok = reqs.len() >= n;
    let gaps: Vec<Gap> = Gap::schedule(&ctx.policy, a + 1, a + k)
        .into_iter()
        .map(|g| Gap { answer, ..g })
        .collect();
    let slow: Vec<_> = reqs
        .iter()
        .skip(a as usize)
        .take(k as usize + 1)
        .cloned()
        .collect();
    let t = ctx.timing(&slow, &gaps);
    let seen_gaps: Vec<String> = slow
        .windows(2)
        .map(|w| {
            format!(
                "{:.3}",
                w[1].arrived.duration_since(w[0].arrived).as_secs_f64()
            )
        })
        .collect();
    let delays: Vec<Duration> = gaps.iter().map(|g| g.delay).collect();
    Ok(vec![timed(
        "S14.wait-after-answer",
        "S14",
        ok,
        &t,
        false,
        ctx.time,
        expected_text.to_owned(),
        format!(
            "attempts {}–{} answered after {:.3} s (wall) each; the next attempts came {} s later, expected {:.3} s + {} s of back-off",
            a + 1,
            a + k,
            answer.as_secs_f64(),
            seen_gaps.join(", "),
            answer.as_secs_f64(),
            fmt_secs(&delays)
        ),
    )])
}

pub(super) async fn s15_exhaustion(ctx: &mut Ctx) -> CaseOutput {
    let total = ctx.policy.max_retries as usize + 1;
    let span = ctx.policy.total();
    let expected = format!(
        "503 forever: {total} POSTs over {} ({} s), then active false with RETRY_COUNT and nothing more",
        human_duration(span),
        span.as_secs()
    );
    let drops_expected = "a second delivery still waiting to retry when RETRY_COUNT deactivates the webhook is dropped: no more POSTs of it, not even after re-activation (settled reading of \"nothing more is POSTed\")";
    let transport_expected = "a webhook whose every attempt finds nothing listening (connection refused, retried like a 5xx) is deactivated with RETRY_COUNT after the same life-cycle";
    if ctx.quick {
        return Ok(vec![
            CaseResult::new(
                "S15.exhaustion-transport",
                "S15,S18",
                Status::Skip,
                transport_expected,
                "--quick skips the full retry life-cycle",
            ),
            CaseResult::new(
                "S15.exhaustion",
                "S15",
                Status::Skip,
                expected,
                "--quick skips the full retry life-cycle",
            ),
            CaseResult::new(
                "S15.drops-pending",
                "S15",
                Status::Skip,
                drops_expected,
                "--quick skips the full retry life-cycle",
            ),
        ]);
    }
    if ctx.time != TimeMode::Virtual && ctx.time.wait(span) > EXHAUSTION_WALL_BUDGET {
        let need = (span.as_secs_f64() / EXHAUSTION_WALL_BUDGET.as_secs_f64()).ceil();
        let why = format!(
            "the life-cycle takes {} of wall time at ×{}; not run (--time-scale {need} or more runs it within {} min)",
            human_duration(ctx.time.wait(span)),
            ctx.time.scale(),
            EXHAUSTION_WALL_BUDGET.as_secs() / 60
        );
        return Ok(vec![
            CaseResult::inconclusive(
                "S15.exhaustion-transport",
                "S15,S18",
                transport_expected,
                why.clone(),
                None,
            ),
            CaseResult::inconclusive("S15.exhaustion", "S15", expected, why.clone(), None),
            CaseResult::inconclusive("S15.drops-pending", "S15", drops_expected, why, None),
        ]);
    }
    let id = ctx.hook("/s15", Some(EventType::QuizCompletion)).await?;
    let closed = super::delivery::closed_port_url(ctx, "/s15-closed")?;
    let closed_id = ctx
        .create_id(json!({"target_url": closed, "event_type": "QUIZ_COMPLETION"}))
        .await?;
    ctx.emit(EventType::QuizCompletion, json!({})).await?;
    // A second delivery, one and a half capped back-offs behind the first: when the
    // first's last retry deactivates the webhook, the second waits between its
    // next-to-last and last retries, far from either (whatever jitter the run has).
    let lag = ctx.policy.max_delay.mul_f64(1.5);
    tokio::time::sleep(ctx.time.wait(lag)).await;
    ctx.emit(EventType::QuizCompletion, json!({})).await?;
    // Both deliveries' attempts: the first's 61, the second's 59 (its last two dropped).
    ctx.wait(2 * total - 2, span + Duration::from_secs(120))
        .await;
    let hook = ctx
        .until_webhook(&id, Duration::from_secs(60), |v| v["active"] == false)
        .await?;
    ctx.settle(ctx.policy.max_delay * 2).await;
    let closed_hook = ctx
        .until_webhook(&closed_id, Duration::from_secs(60), |v| {
            v["active"] == false
        })
        .await?;
    let by_transport = CaseResult::check(
        "S15.exhaustion-transport",
        "S15,S18",
        closed_hook["active"] == false && closed_hook["deactivate_reason"] == "RETRY_COUNT",
        transport_expected,
        format!(
            "{closed}: active {}, deactivate_reason {}",
            closed_hook["active"], closed_hook["deactivate_reason"]
        ),
    );
    let reqs = ctx.mock.requests();
    let Some(first) = reqs.first().map(|r| r.digest) else {
        return Err(super::CaseError("no POST reached the receiver".into()));
    };
    let mut by_digest: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for r in &reqs {
        by_digest
            .entry(r.digest.to_string())
            .or_default()
            .push(r.clone());
    }
    let a = by_digest.remove(&first.to_string()).unwrap_or_default();
    let b_before = by_digest.values().map(Vec::len).sum::<usize>();
    let t = ctx.timing(&a, &Gap::schedule(&ctx.policy, 1, ctx.policy.max_retries));
    let observed: Duration = a
        .last()
        .map(|l| ctx.time.observed(l.arrived.duration_since(a[0].arrived)))
        .unwrap_or_default();
    let exhaustion = timed(
        "S15.exhaustion",
        "S15",
        a.len() == total && hook["active"] == false && hook["deactivate_reason"] == "RETRY_COUNT",
        &t,
        false,
        ctx.time,
        expected,
        format!(
            "{} POSTs over ≈{:.0} s; active {}, deactivate_reason {}",
            a.len(),
            observed.as_secs_f64(),
            hook["active"],
            hook["deactivate_reason"]
        ),
    );
    // Re-activate on the same URL: the dropped delivery must stay dropped.
    let (code, _) = ctx.patch(&id, json!({"active": true})).await?;
    // A new event wakes any scheduler; the dropped delivery must not come with it.
    ctx.emit(EventType::QuizCompletion, json!({})).await?;
    ctx.wait(reqs.len() + 1, Duration::from_secs(10)).await;
    ctx.settle(retry_window(ctx)).await;
    let b_after = ctx
        .mock
        .requests()
        .iter()
        .filter(|r| by_digest.contains_key(&r.digest.to_string()))
        .count();
    let drops = CaseResult::check(
        "S15.drops-pending",
        "S15",
        code == 200 && b_before >= 1 && b_before < total && b_after == b_before,
        drops_expected,
        format!(
            "second delivery: {b_before} POST(s) when the webhook was deactivated, {b_after} after re-activating it (PATCH → {code}) and emitting a new event"
        ),
    );
    Ok(vec![exhaustion, drops, by_transport])
}

pub(super) async fn s16_deactivate(ctx: &mut Ctx) -> CaseOutput {
    let id = ctx.hook("/s16", Some(EventType::LessonCompletion)).await?;
    ctx.emit(EventType::LessonCompletion, json!({})).await?;
    ctx.wait(1, Duration::from_secs(10)).await;
    let hook = ctx
        .until_webhook(&id, Duration::from_secs(10), |v| v["active"] == false)
        .await?;
    ctx.emit(EventType::LessonCompletion, json!({})).await?;
    ctx.settle(retry_window(ctx)).await;
    let posts = ctx.mock.requests().len();
    let deact = CaseResult::check(
        "S16.deactivate-4xx",
        "S16",
        posts == 1 && hook["active"] == false && hook["deactivate_reason"] == "HTTP_4XX_RESPONSE",
        "a 404 → one POST, no retry, webhook active false with HTTP_4XX_RESPONSE; later events not sent",
        format!(
            "{posts} POST(s); active {}, deactivate_reason {}",
            hook["active"], hook["deactivate_reason"]
        ),
    );
    // Any 4xx, 408 and 429 included; and a 4xx to a retry, not only to a first
    // attempt (`/s16-retry` answers 503, then 404).
    ctx.mock.clear();
    let paths = [
        "/s16-400",
        "/s16-408",
        "/s16-410",
        "/s16-429",
        "/s16-420",
        "/s16-499",
        "/s16-429-ra",
    ];
    let mut ids = Vec::new();
    for p in paths {
        ids.push(ctx.hook(p, Some(EventType::PathCompletion)).await?);
    }
    let retry_id = ctx
        .hook("/s16-retry", Some(EventType::PathCompletion))
        .await?;
    // A 307 to a path that answers 404: the 4xx at the end of the redirect is the
    // attempt's answer (S16, S18).
    let hop_id = ctx
        .hook("/s16-hop", Some(EventType::PathCompletion))
        .await?;
    // Two webhooks on one URL that answers 404: the older owns the delivery (S12,
    // settled), so only it gets the 4xx and is deactivated.
    let shared_old = ctx
        .hook("/s16-shared", Some(EventType::PathCompletion))
        .await?;
    let shared_new = ctx
        .hook("/s16-shared", Some(EventType::PathCompletion))
        .await?;
    ctx.emit(EventType::PathCompletion, json!({})).await?;
    let mut states = Vec::new();
    for id in &ids {
        let v = ctx
            .until_webhook(id, Duration::from_secs(10), |v| v["active"] == false)
            .await?;
        states.push(v);
    }
    let on_retry = ctx
        .until_webhook(&retry_id, retry_window(ctx), |v| v["active"] == false)
        .await?;
    let hop = ctx
        .until_webhook(&hop_id, Duration::from_secs(10), |v| v["active"] == false)
        .await?;
    let old = ctx
        .until_webhook(&shared_old, Duration::from_secs(10), |v| {
            v["active"] == false
        })
        .await?;
    ctx.settle(retry_window(ctx)).await;
    let new = ctx.webhook(&shared_new).await?;
    let reqs = ctx.mock.requests();
    let (hops, hop_404) = (
        ctx.on_path(&reqs, "/s16-hop").len(),
        ctx.on_path(&reqs, "/s16-hop-404").len(),
    );
    let after_redirect = CaseResult::check(
        "S16.4xx-after-redirect",
        "S16,S18",
        hops == 1
            && hop_404 == 1
            && hop["active"] == false
            && hop["deactivate_reason"] == "HTTP_4XX_RESPONSE",
        "a 307 to a path that answers 404: the 404 deactivates at once (HTTP_4XX_RESPONSE), no retry: one request to each path",
        format!(
            "{hops} request(s) to the redirecting path, {hop_404} to the 404; active {}, deactivate_reason {}",
            hop["active"], hop["deactivate_reason"]
        ),
    );
    let shared_posts = ctx.on_path(&reqs, "/s16-shared").len();
    let shared = CaseResult::check(
        "S16.shared-url",
        "S16,S12",
        shared_posts == 1
            && old["active"] == false
            && old["deactivate_reason"] == "HTTP_4XX_RESPONSE"
            && new["active"] == true
            && new["deactivate_reason"].is_null(),
        "two webhooks on one URL answering 404: one POST, through the older (S12, settled), which alone is deactivated (HTTP_4XX_RESPONSE); the newer, which sent nothing, stays active",
        format!(
            "{shared_posts} POST(s); older: active {}, deactivate_reason {}; newer: active {}, deactivate_reason {}",
            old["active"], old["deactivate_reason"], new["active"], new["deactivate_reason"]
        ),
    );
    let retry_posts = ctx.on_path(&reqs, "/s16-retry").len();
    let four_on_retry = CaseResult::check(
        "S16.4xx-on-retry",
        "S16",
        retry_posts == 2
            && on_retry["active"] == false
            && on_retry["deactivate_reason"] == "HTTP_4XX_RESPONSE",
        "a 4xx to a retry deactivates as one to a first attempt does: 503 then 404 → two POSTs, deactivated with HTTP_4XX_RESPONSE",
        format!(
            "{retry_posts} POST(s); active {}, deactivate_reason {}",
            on_retry["active"], on_retry["deactivate_reason"]
        ),
    );
    let mut bad = Vec::new();
    for (p, v) in paths.iter().zip(&states) {
        let n = ctx.on_path(&reqs, p).len();
        if n != 1 || v["active"] != false || v["deactivate_reason"] != "HTTP_4XX_RESPONSE" {
            bad.push(format!(
                "{} → {n} POST(s), active {}, deactivate_reason {}",
                &p[5..],
                v["active"],
                v["deactivate_reason"]
            ));
        }
    }
    let any = CaseResult::check(
        "S16.any-4xx",
        "S16",
        bad.is_empty(),
        "400, 408, 410, 429, a 429 with Retry-After: 1, and the unregistered 420 and 499 each → one POST, no retry, deactivated with HTTP_4XX_RESPONSE (a Retry-After changes nothing)",
        if bad.is_empty() {
            "400, 408, 410, 429, 420, 499, 429 with Retry-After: one POST each, deactivated with HTTP_4XX_RESPONSE"
                .to_owned()
        } else {
            bad.join("; ")
        },
    );
    // Re-activate (S4) with `active: true` alone, the URL unchanged: new events flow.
    let (code, v) = ctx
        .api
        .json(
            reqwest::Method::PUT,
            &format!("/v1/webhooks/{id}"),
            Some(&json!({"active": true})),
        )
        .await?;
    ctx.mock.clear();
    ctx.emit(EventType::LessonCompletion, json!({})).await?;
    let reqs = ctx.wait(1, Duration::from_secs(10)).await;
    let react = CaseResult::check(
        "S4.reactivate",
        "S4",
        code == 200 && v["active"] == true && v["deactivate_reason"].is_null() && reqs.len() == 1,
        "PUT {active: true} (URL unchanged) clears deactivate_reason and the webhook receives new events",
        format!(
            "{code}: active {}, deactivate_reason {}; {} POST(s) after",
            v["active"],
            v["deactivate_reason"],
            reqs.len()
        ),
    );
    Ok(vec![
        deact,
        any,
        four_on_retry,
        react,
        after_redirect,
        shared,
    ])
}

pub(super) async fn s17_success(ctx: &mut Ctx) -> CaseOutput {
    let paths = ["/ok", "/s17-201", "/s17-204", "/s17-299"];
    let mut ids = Vec::new();
    for p in paths {
        ids.push(ctx.hook(p, Some(EventType::DomainEnrollment)).await?);
    }
    ctx.emit(EventType::DomainEnrollment, json!({})).await?;
    ctx.wait(4, Duration::from_secs(10)).await;
    ctx.settle(retry_window(ctx)).await;
    let reqs = ctx.mock.requests();
    let mut seen = Vec::new();
    for (p, id) in paths.iter().zip(&ids) {
        let hook = ctx.webhook(id).await?;
        seen.push((ctx.on_path(&reqs, p).len(), hook["active"] == true));
    }
    let fmt = |(n, active): (usize, bool)| format!("{n} POST(s), active {active}");
    Ok(vec![
        CaseResult::check(
            "S17.success",
            "S17",
            seen[0] == (1, true),
            "a 200 → exactly one POST, no retry, webhook stays active",
            fmt(seen[0]),
        ),
        CaseResult::check(
            "S17.any-2xx",
            "S17",
            seen[1] == (1, true) && seen[2] == (1, true) && seen[3] == (1, true),
            "a 201, a 204 and a 299 are successes too: one POST each, no retry, active",
            format!(
                "201: {}; 204: {}; 299: {}",
                fmt(seen[1]),
                fmt(seen[2]),
                fmt(seen[3])
            ),
        ),
    ])
}

pub(super) async fn s18_redirects(ctx: &mut Ctx) -> CaseOutput {
    let id = ctx
        .hook("/s18-redirect", Some(EventType::PathEnrollment))
        .await?;
    ctx.emit(EventType::PathEnrollment, json!({})).await?;
    let hook = ctx
        .until_webhook(&id, Duration::from_secs(30), |v| v["active"] == false)
        .await?;
    let hops = ctx.mock.requests().len();
    let redirects = CaseResult::check(
        "S18.redirects",
        "S18",
        hook["active"] == false && hook["deactivate_reason"] == "TOO_MANY_REDIRECTS" && hops == 11,
        "a redirect loop is followed 10 times (11 requests; settled limit), then the webhook is deactivated with TOO_MANY_REDIRECTS",
        format!(
            "{hops} requests; active {}, deactivate_reason {}",
            hook["active"], hook["deactivate_reason"]
        ),
    );
    ctx.mock.clear();
    let id = ctx
        .hook("/s18-moved", Some(EventType::PathCompletion))
        .await?;
    ctx.emit(EventType::PathCompletion, json!({})).await?;
    let reqs = ctx.wait(2, Duration::from_secs(10)).await;
    let first = ctx.on_path(&reqs, "/s18-moved");
    let landed = ctx.on_path(&reqs, "/s18-target");
    let hook = ctx.webhook(&id).await?;
    let ok = first.len() == 1
        && landed.len() == 1
        && landed[0].method == "POST"
        && landed[0].digest == first[0].digest
        && hook["active"] == true;
    let moved = CaseResult::check(
        "S18.redirect-307",
        "S18",
        ok,
        "a 307 is followed with the same POST and the same body (settled: standard client rules); the webhook stays active",
        format!(
            "{} request(s) to the redirecting URL, then {}; active {}",
            first.len(),
            landed
                .first()
                .map(|r| format!(
                    "{} {} ({} bytes, same body: {})",
                    r.method,
                    r.path_only(),
                    r.body.len(),
                    first.first().is_some_and(|f| f.digest == r.digest)
                ))
                .unwrap_or_else(|| "nothing at the target".into()),
            hook["active"]
        ),
    );
    // A 308 keeps the POST as a 307 does; a redirect within the origin keeps the
    // webhook's Authorization and additional headers (the client drops them only on
    // leaving the origin).
    ctx.mock.clear();
    let id308 = ctx
        .create_id(json!({
            "target_url": ctx.mock_url("/s18-moved-308"),
            "event_type": "LESSON_COMPLETION",
            "basic_auth_username": "hookjar-user",
            "basic_auth_password": "hookjar-pass",
            "additional_headers": {"x-hookjar-hop": "kept"},
        }))
        .await?;
    ctx.emit(EventType::LessonCompletion, json!({})).await?;
    let reqs = ctx.wait(2, Duration::from_secs(10)).await;
    let first = ctx.on_path(&reqs, "/s18-moved-308");
    let landed = ctx.on_path(&reqs, "/s18-target-308");
    let hook = ctx.webhook(&id308).await?;
    let want_auth = hookjar_core::request::basic_auth_header("hookjar-user", "hookjar-pass")
        .unwrap_or_default();
    let permanent = CaseResult::check(
        "S18.redirect-308",
        "S18",
        first.len() == 1
            && landed.len() == 1
            && landed[0].method == "POST"
            && landed[0].digest == first[0].digest
            && hook["active"] == true,
        "a 308 is followed with the same POST and the same body, as a 307 (settled: standard client rules); the webhook stays active",
        format!(
            "{} request(s) to the redirecting URL, then {}",
            first.len(),
            landed
                .first()
                .map(|r| format!("{} ({} bytes)", r.method, r.body.len()))
                .unwrap_or_else(|| "nothing at the target".into())
        ),
    );
    let kept = |r: &RecordedRequest| {
        (
            r.header("authorization").map(str::to_owned),
            r.header("x-hookjar-hop").map(str::to_owned),
        )
    };
    let headers = CaseResult::check(
        "S18.redirect-keeps-headers",
        "S18",
        landed.len() == 1 && kept(&landed[0]) == (Some(want_auth), Some("kept".to_owned())),
        "a redirect within the same origin keeps the webhook's Authorization and additional headers (settled: standard client rules)",
        landed
            .first()
            .map(|r| {
                let (auth, hop) = kept(r);
                format!("at the target: Authorization {auth:?}, x-hookjar-hop {hop:?}")
            })
            .unwrap_or_else(|| "nothing at the target".into()),
    );
    // A relative Location without a leading slash (`./next` from /s18-dir/start)
    // resolves against the URL asked (RFC 3986): /s18-dir/next, not /next.
    ctx.mock.clear();
    let rel_id = ctx
        .hook("/s18-dir/start", Some(EventType::CourseCompletion))
        .await?;
    ctx.emit(EventType::CourseCompletion, json!({})).await?;
    let reqs = ctx.wait(2, Duration::from_secs(10)).await;
    ctx.settle(Duration::from_secs(1)).await;
    let reqs = if reqs.len() < 2 {
        ctx.mock.requests()
    } else {
        reqs
    };
    let rel_hook = ctx.webhook(&rel_id).await?;
    let paths: Vec<String> = reqs
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    let relative = CaseResult::check(
        "S18.relative-location",
        "S18",
        paths == ["POST /s18-dir/start", "POST /s18-dir/next"] && rel_hook["active"] == true,
        "a 307 with the relative Location \"./next\" from /s18-dir/start is followed to /s18-dir/next (resolved against the URL asked, RFC 3986); the webhook stays active",
        format!("requests {paths:?}; active {}", rel_hook["active"]),
    );
    Ok(vec![redirects, moved, permanent, headers, relative])
}

/// S18 (settled): the timeout is 10 s: an answer that takes 7 s is a success, sent
/// once, not a timeout retried.
pub(super) async fn s18_slow_answer(ctx: &mut Ctx) -> CaseOutput {
    let id = ctx
        .hook("/s18-slow", Some(EventType::DashboardTaskCreated))
        .await?;
    ctx.emit(EventType::DashboardTaskCreated, json!({})).await?;
    let wall = match ctx.time {
        TimeMode::Virtual => Duration::from_secs(30),
        TimeMode::Scaled(_) => Duration::from_secs(20),
    };
    // The answer comes 7 s of wall time after the POST; then a retry would follow
    // within the first back-off if the dispatcher had timed out.
    let _ = ctx.mock.wait_for_requests(2, wall).await;
    ctx.settle(retry_window(ctx)).await;
    let posts = ctx.on_path(&ctx.mock.requests(), "/s18-slow").len();
    let v = ctx.webhook(&id).await?;
    let (_, deliveries) = ctx.deliveries(&id).await?;
    Ok(vec![CaseResult::check(
        "S18.slow-answer",
        "S18",
        posts == 1 && v["active"] == true,
        "a 200 that takes 7 s (under the settled 10 s timeout) is a success: one POST, no retry, the webhook stays active",
        format!(
            "{posts} POST(s); active {}; delivery log: {}",
            v["active"],
            deliveries
                .first()
                .map(|d| d["state"].to_string())
                .unwrap_or_else(|| "-".into())
        ),
    )])
}

/// S18 (settled: standard client rules, as Python's `requests`): a 301, 302 or 303 is
/// followed with a GET without the body. The GETs are this case's own: they are kept
/// out of S7.every-request, which holds every POST of the run to S7.
pub(super) async fn s18_redirect_to_get(ctx: &mut Ctx) -> CaseOutput {
    let codes = [301u16, 302, 303];
    for code in codes {
        ctx.hook(&format!("/s18-see-{code}"), Some(EventType::QuizCompletion))
            .await?;
    }
    ctx.emit(EventType::QuizCompletion, json!({})).await?;
    let reqs = ctx.wait(2 * codes.len(), Duration::from_secs(10)).await;
    ctx.settle(Duration::from_secs(2)).await;
    let reqs = if reqs.len() < 2 * codes.len() {
        ctx.mock.requests()
    } else {
        reqs
    };
    let mut ok = true;
    let mut seen = Vec::new();
    for code in codes {
        let first = ctx.on_path(&reqs, &format!("/s18-see-{code}"));
        let landed = ctx.on_path(&reqs, &format!("/s18-got-{code}"));
        ok &= first.len() == 1
            && first[0].method == "POST"
            && landed.len() == 1
            && landed[0].method == "GET"
            && landed[0].body.is_empty();
        seen.push(format!(
            "{code}: {} POST(s), then {}",
            first.len(),
            match landed.as_slice() {
                [] => "nothing at the target".to_owned(),
                [r] => format!("{} with {} bytes of body", r.method, r.body.len()),
                more => format!("{} requests", more.len()),
            }
        ));
    }
    for r in &reqs {
        if !r.path_only().starts_with("/s18-got-") {
            for v in &r.violations {
                ctx.violations.push(format!("{} {}: {v}", r.method, r.path));
            }
        }
    }
    ctx.mock.clear();
    Ok(vec![CaseResult::check(
        "S18.redirect-to-get",
        "S18",
        ok,
        "settled (standard client rules): a 301, a 302 and a 303 with a Location are each followed with one GET without the body",
        seen.join("; "),
    )])
}

/// S18 (settled: standard client rules): a redirect to another origin (another host
/// for the same receiver: `127.0.0.1` and `localhost`) is followed without the
/// `Authorization` header, which stays with the origin it was meant for.
pub(super) async fn s18_redirect_other_origin(ctx: &mut Ctx) -> CaseOutput {
    let base = match reqwest::Url::parse(&ctx.mock_url("/")) {
        Ok(u) => u,
        Err(e) => return Err(CaseError(format!("the receiver URL: {e}"))),
    };
    let other = match base.host_str() {
        Some("127.0.0.1") => "localhost",
        Some("localhost") => "127.0.0.1",
        _ => {
            return Ok(vec![CaseResult::new(
                "S18.redirect-other-origin",
                "S18",
                Status::Skip,
                "Authorization dropped on a redirect to another origin",
                format!(
                    "needs a receiver the dispatcher reaches as both 127.0.0.1 and localhost; the receiver is {base}"
                ),
            )]);
        }
    };
    let mut landed = base.clone();
    if landed.set_host(Some(other)).is_err() {
        return Err(CaseError(format!("cannot name {base} as {other}")));
    }
    landed.set_path("/s18-landed");
    let mut routes = ctx.mock.scripts().routes;
    routes.insert(
        "/s18-away".into(),
        Script::parse(&format!("redirect={landed}"))
            .map_err(|e| CaseError(format!("the redirect script: {e}")))?,
    );
    ctx.mock.update_scripts(ScriptUpdate {
        routes: Some(routes),
        ..ScriptUpdate::default()
    });
    let id = ctx
        .create_id(json!({
            "target_url": ctx.mock_url("/s18-away"),
            "event_type": "VILT_EVENT_REGISTRATION",
            "basic_auth_username": "hookjar-user",
            "basic_auth_password": "hookjar-pass",
        }))
        .await?;
    ctx.emit(EventType::ViltEventRegistration, json!({}))
        .await?;
    let reqs = ctx.wait(2, Duration::from_secs(10)).await;
    let away = ctx.on_path(&reqs, "/s18-away");
    let there = ctx.on_path(&reqs, "/s18-landed");
    let auth = |r: &RecordedRequest| r.header("authorization").map(str::to_owned);
    let hook = ctx.webhook(&id).await?;
    let ok = away.len() == 1
        && away[0].header("authorization").is_some()
        && there.len() == 1
        && there[0].method == "POST"
        && there[0].header("authorization").is_none()
        && hook["active"] == true;
    Ok(vec![CaseResult::check(
        "S18.redirect-other-origin",
        "S18",
        ok,
        format!(
            "a 307 from {} to {landed} is followed with the POST, Authorization sent to the first origin only (settled: standard client rules); the webhook stays active",
            ctx.mock_url("/s18-away")
        ),
        format!(
            "first origin: {} request(s), Authorization {:?}; other origin: {} request(s){}; active {}",
            away.len(),
            away.first().and_then(auth),
            there.len(),
            there
                .first()
                .map(|r| format!(", {} with Authorization {:?}", r.method, auth(r)))
                .unwrap_or_default(),
            hook["active"]
        ),
    )])
}

/// S16 (settled): a verdict applies only to the webhook as it was when the attempt was
/// claimed. A 404 that comes back after the webhook was moved to a new URL is logged,
/// not applied: the webhook stays active.
pub(super) async fn s16_stale_verdict(ctx: &mut Ctx) -> CaseOutput {
    let id = ctx
        .hook("/s16-slow", Some(EventType::CourseEnrollment))
        .await?;
    ctx.emit(EventType::CourseEnrollment, json!({})).await?;
    // The receiver holds the 404 for 3 s of wall time (under the 10 s timeout).
    let reqs = ctx.wait(1, Duration::from_secs(10)).await;
    if reqs.is_empty() {
        return Err(CaseError("no POST reached the receiver within 10 s".into()));
    }
    let (code, moved) = ctx
        .patch(&id, json!({"target_url": ctx.mock_url("/s16-moved")}))
        .await?;
    if code != 200 {
        return Err(CaseError(format!(
            "PATCH /v1/webhooks/{id} answered {code}, expected 200: {moved}"
        )));
    }
    // The 404 lands, and the dispatcher has time to record it.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let hook = ctx.webhook(&id).await?;
    ctx.emit(EventType::CourseEnrollment, json!({})).await?;
    let reqs = ctx.wait(2, Duration::from_secs(10)).await;
    let moved_posts = ctx.on_path(&reqs, "/s16-moved").len();
    Ok(vec![CaseResult::check(
        "S16.stale-verdict",
        "S16",
        hook["active"] == true && hook["deactivate_reason"].is_null() && moved_posts == 1,
        "settled: a 404 answered after the webhook was moved to a new URL (PATCH during the attempt) is not applied: the webhook stays active and the next event goes to the new URL",
        format!(
            "after the late 404: active {}, deactivate_reason {}; next event: {moved_posts} POST(s) to the new URL",
            hook["active"], hook["deactivate_reason"]
        ),
    )])
}

pub(super) async fn s18_transport(ctx: &mut Ctx) -> CaseOutput {
    let id = ctx
        .hook("/s18-reset", Some(EventType::PurchaseFulfillment))
        .await?;
    ctx.emit(EventType::PurchaseFulfillment, json!({})).await?;
    let reqs = ctx.wait(2, Duration::from_secs(30)).await;
    let t = ctx.timing(&reqs, &Gap::schedule(&ctx.policy, 1, 1));
    let hook = ctx.webhook(&id).await?;
    let ok = reqs.len() == 2 && hook["active"] == true && t.mismatch.is_none();
    let gap_note = if t.any_resolved {
        t.summary.clone()
    } else {
        format!("gap not checked: {}", t.unresolved_note(ctx.time))
    };
    let transport = CaseResult::check(
        "S18.transport",
        "S18",
        ok,
        "a reset connection is retried like a 5xx (a second POST after the first back-off) and does not deactivate",
        format!(
            "{} POSTs; active {}; {gap_note}{}",
            reqs.len(),
            hook["active"],
            t.mismatch.map(|m| format!(" — {m}")).unwrap_or_default()
        ),
    );

    // Connection refused: port 1 on the dispatcher's own loopback.
    let refused_id = ctx.create_id(json!({"target_url": "http://127.0.0.1:1/s18-refused", "event_type": "LESSON_COMPLETION"})).await?;
    ctx.emit(EventType::LessonCompletion, json!({})).await?;
    ctx.settle(retry_window(ctx)).await;
    let v = ctx.webhook(&refused_id).await?;
    let refused = CaseResult::check(
        "S18.refused",
        "S18",
        v["active"] == true && v["deactivate_reason"].is_null(),
        "connection refused is retried like a 5xx (settled): the webhook stays active",
        format!(
            "after {} s: active {}, deactivate_reason {}",
            retry_window(ctx).as_secs(),
            v["active"],
            v["deactivate_reason"]
        ),
    );

    // A receiver that never answers: the attempt times out (settled: 10 s by default)
    // and is retried. The timeout runs in the dispatcher's wall time, not its scaled time.
    ctx.mock.clear();
    let hang_id = ctx
        .hook("/s18-hang", Some(EventType::QuizCompletion))
        .await?;
    ctx.emit(EventType::QuizCompletion, json!({})).await?;
    let wall = match ctx.time {
        TimeMode::Virtual => Duration::from_secs(60),
        TimeMode::Scaled(_) => Duration::from_secs(40),
    };
    let reqs = match ctx.mock.wait_for_requests(2, wall).await {
        Ok(r) => r,
        Err(_) => ctx.mock.requests(),
    };
    let v = ctx.webhook(&hang_id).await?;
    let timeout = CaseResult::check(
        "S18.timeout",
        "S18",
        reqs.len() >= 2 && v["active"] == true,
        "an attempt that gets no answer times out and is retried (settled); the webhook stays active",
        format!(
            "{} POST(s) within {} s of wall time; active {}, deactivate_reason {}",
            reqs.len(),
            wall.as_secs(),
            v["active"],
            v["deactivate_reason"]
        ),
    );
    // A 3xx without a Location is no redirect: it is "any other status", retried
    // like a 5xx (S18), never a success.
    ctx.mock.clear();
    let bare_id = ctx
        .hook("/s18-302", Some(EventType::LessonCompletion))
        .await?;
    ctx.emit(EventType::LessonCompletion, json!({})).await?;
    // Other webhooks of this group (the hanging one) keep posting: count this path.
    let deadline = tokio::time::Instant::now() + retry_window(ctx) * 2;
    let posts = loop {
        let reqs = ctx.mock.requests();
        let posts = ctx.on_path(&reqs, "/s18-302").len();
        let now = tokio::time::Instant::now();
        if posts >= 2 || now >= deadline {
            break posts;
        }
        let _ = ctx
            .mock
            .wait_for_requests(reqs.len() + 1, deadline - now)
            .await;
    };
    let v = ctx.webhook(&bare_id).await?;
    let bare = CaseResult::check(
        "S18.redirect-without-location",
        "S18",
        posts == 2 && v["active"] == true,
        "a 302 without a Location header is retried like a 5xx (a second POST after the first back-off), not taken for a success; the webhook stays active",
        format!(
            "{posts} POST(s) (302, then 200 expected); active {}",
            v["active"]
        ),
    );
    Ok(vec![transport, refused, timeout, bare])
}

pub(super) async fn s19_stored(ctx: &mut Ctx) -> CaseOutput {
    let id = ctx
        .hook("/ok", Some(EventType::DashboardTaskCreated))
        .await?;
    let emitted = ctx.emit(EventType::DashboardTaskCreated, json!({})).await?;
    // Straight after the 202 the delivery must already be in the log.
    let (code, deliveries) = ctx.deliveries(&id).await?;
    let n = deliveries.len();
    ctx.wait(1, Duration::from_secs(10)).await;
    Ok(vec![CaseResult::check(
        "S19.stored",
        "S19",
        emitted["deliveries"].as_u64().is_some_and(|d| d >= 1) && code == 200 && n == 1,
        "when emit answers 202 the event's delivery is already stored (listed in the delivery log)",
        format!("emit {emitted}; log right after: {code}, {n} delivery(ies)"),
    )])
}

/// S16 and S12: once a webhook is inactive — deactivated by a 4xx, or switched off
/// with PATCH — its deliveries still waiting to retry are not sent either. The
/// receiver answers by event type: COURSE_ENROLLMENT 503 (retried), LESSON_COMPLETION
/// 404 (deactivates).
pub(super) async fn s16_drops_pending(ctx: &mut Ctx) -> CaseOutput {
    ctx.scripts_by_type(&[
        (EventType::CourseEnrollment, "503"),
        (EventType::LessonCompletion, "404"),
    ])?;
    let result = drops_pending(ctx).await;
    ctx.scripts_by_type(&[])?;
    result
}

async fn drops_pending(ctx: &mut Ctx) -> CaseOutput {
    let failing = ctx.hook("/s16-pending", None).await?;
    let paused = ctx
        .hook("/s12-paused", Some(EventType::CourseEnrollment))
        .await?;
    ctx.emit(EventType::CourseEnrollment, json!({})).await?;
    let reqs = ctx.wait(2, Duration::from_secs(10)).await;
    let Some(first) = reqs.first().map(|r| r.arrived) else {
        return Err(CaseError("no POST reached the receiver within 10 s".into()));
    };
    let count = |ctx: &Ctx, path: &str| ctx.on_path(&ctx.mock.requests(), path).len();
    let (code, v) = ctx.patch(&paused, json!({"active": false})).await?;
    if code != 200 {
        return Err(CaseError(format!(
            "PATCH /v1/webhooks/{paused} answered {code}, expected 200: {v}"
        )));
    }
    let paused_at = count(ctx, "/s12-paused");
    ctx.emit(EventType::LessonCompletion, json!({})).await?;
    let hook = ctx
        .until_webhook(&failing, Duration::from_secs(10), |v| v["active"] == false)
        .await?;
    let failing_at = count(ctx, "/s16-pending");
    // Long enough for two more retries of either delivery, wherever its back-off is
    // by now (each wait is at most twice the time since the first attempt, plus 2 s).
    let elapsed = ctx.time.observed(first.elapsed());
    ctx.settle(elapsed * 4 + retry_window(ctx)).await;
    let failing_after = count(ctx, "/s16-pending");
    let paused_after = count(ctx, "/s12-paused");
    // One attempt may have been on its way when the webhook was switched off.
    Ok(vec![
        CaseResult::check(
            "S16.drops-pending",
            "S16",
            hook["active"] == false
                && hook["deactivate_reason"] == "HTTP_4XX_RESPONSE"
                && failing_after <= failing_at + 1,
            "a 404 to one event deactivates the webhook, and another event's delivery still waiting to retry (503) is sent no more",
            format!(
                "active {}, deactivate_reason {}; the waiting delivery: {failing_at} POST(s) when deactivated, {failing_after} after {:.0} s more",
                hook["active"],
                hook["deactivate_reason"],
                (elapsed * 4 + retry_window(ctx)).as_secs_f64()
            ),
        ),
        CaseResult::check(
            "S12.paused",
            "S12",
            paused_at >= 1 && paused_after <= paused_at + 1,
            "a webhook switched off (PATCH active: false) receives nothing more: its delivery waiting to retry (503) is not sent again",
            format!("{paused_at} POST(s) when switched off, {paused_after} after"),
        ),
    ])
}

/// S14: the back-off is Skilljar's whatever the receiver asks: a 503 with
/// `Retry-After: 3600` is retried after the first back-off (2 s), not after an hour.
/// The retry must come within half the Retry-After (a wait that would tell the two
/// apart at this scale, at most 10 s of wall time); in virtual time its gap is checked
/// exactly.
pub(super) async fn s14_retry_after(ctx: &mut Ctx) -> CaseOutput {
    const RETRY_AFTER: Duration = Duration::from_secs(3600);
    let first = ctx
        .policy
        .delay_before_retry(1)
        .unwrap_or(Duration::from_secs(2));
    let expected = format!(
        "a 503 with Retry-After: {} then 200: the retry comes after the policy's first back-off ({} s), the Retry-After ignored",
        RETRY_AFTER.as_secs(),
        first.as_secs_f64()
    );
    let window = ctx.time.wait(RETRY_AFTER / 2).min(Duration::from_secs(10));
    if window < ctx.time.wait(first) + Duration::from_millis(250) || first >= RETRY_AFTER / 2 {
        return Ok(vec![CaseResult::inconclusive(
            "S14.ignores-retry-after",
            "S14",
            expected,
            format!(
                "at ×{} half the Retry-After is {:.0} ms of wall time: too short to tell a retry after the back-off from one after the Retry-After; not run",
                ctx.time.scale(),
                window.as_secs_f64() * 1000.0
            ),
            Some((RETRY_AFTER.as_secs_f64() / 2.0 / 0.25).floor()),
        )]);
    }
    let id = ctx
        .hook("/s14-retry-after", Some(EventType::PathEnrollment))
        .await?;
    ctx.emit(EventType::PathEnrollment, json!({})).await?;
    let reqs = ctx.wait(1, Duration::from_secs(10)).await;
    let Some(t0) = reqs.first().map(|r| r.arrived) else {
        return Err(CaseError("no POST reached the receiver within 10 s".into()));
    };
    let reqs = match ctx
        .mock
        .wait_for_requests(2, window.saturating_sub(t0.elapsed()))
        .await
    {
        Ok(r) => r,
        Err(_) => ctx.mock.requests(),
    };
    let hook = ctx.webhook(&id).await?;
    let t = ctx.timing(&reqs, &Gap::schedule(&ctx.policy, 1, 1));
    let gap = reqs
        .get(1)
        .map(|r| ctx.time.observed(r.arrived.duration_since(t0)));
    let ok = reqs.len() >= 2 && t.mismatch.is_none() && hook["active"] == true;
    Ok(vec![CaseResult::check(
        "S14.ignores-retry-after",
        "S14",
        ok,
        expected,
        format!(
            "{}; active {}{}",
            match gap {
                Some(g) => format!(
                    "the retry came ≈{:.1} s (dispatcher time) after the 503",
                    g.as_secs_f64()
                ),
                None => format!(
                    "no retry within {:.1} s of wall time (≈{:.0} s of dispatcher time)",
                    window.as_secs_f64(),
                    ctx.time.observed(window).as_secs_f64()
                ),
            },
            hook["active"],
            t.mismatch.map(|m| format!(" — {m}")).unwrap_or_default()
        ),
    )])
}

/// S12 "each delivery has its own retries": a webhook's delivery waiting to retry
/// (COURSE_ENROLLMENT, answered 503) keeps retrying when another event's delivery to
/// the same webhook succeeds (LESSON_COMPLETION, answered 200). The receiver answers
/// by event type.
pub(super) async fn s12_own_retries(ctx: &mut Ctx) -> CaseOutput {
    ctx.scripts_by_type(&[
        (EventType::CourseEnrollment, "503"),
        (EventType::LessonCompletion, "200"),
    ])?;
    let result = own_retries(ctx).await;
    ctx.scripts_by_type(&[])?;
    result
}

async fn own_retries(ctx: &mut Ctx) -> CaseOutput {
    let id = ctx.hook("/s12-own", None).await?;
    ctx.emit(EventType::CourseEnrollment, json!({})).await?;
    let reqs = ctx.wait(1, Duration::from_secs(10)).await;
    let Some(first) = reqs.first().map(|r| r.arrived) else {
        return Err(CaseError("no POST reached the receiver within 10 s".into()));
    };
    ctx.emit(EventType::LessonCompletion, json!({})).await?;
    let of = |ctx: &Ctx, t: &str| {
        ctx.mock
            .requests()
            .iter()
            .filter(|r| r.event_type.as_deref() == Some(t))
            .count()
    };
    // Wait for the success, then count the waiting delivery's POSTs.
    let deadline = tokio::time::Instant::now()
        + ctx.time.wait(Duration::from_secs(10))
        + Duration::from_secs(2);
    while of(ctx, "LESSON_COMPLETION") == 0 && tokio::time::Instant::now() < deadline {
        let n = ctx.mock.requests().len();
        let _ = ctx
            .mock
            .wait_for_requests(
                n + 1,
                deadline.saturating_duration_since(tokio::time::Instant::now()),
            )
            .await;
    }
    // Let the 200 be recorded before counting.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let at_success = of(ctx, "COURSE_ENROLLMENT");
    // Long enough for two more retries wherever the back-off is by now (each wait is
    // at most twice the time since the first attempt, plus 2 s).
    let elapsed = ctx.time.observed(first.elapsed());
    let more = elapsed * 4 + retry_window(ctx);
    ctx.settle(more).await;
    let after = of(ctx, "COURSE_ENROLLMENT");
    let hook = ctx.webhook(&id).await?;
    Ok(vec![CaseResult::check(
        "S12.own-retries",
        "S12,S14",
        of(ctx, "LESSON_COMPLETION") == 1 && after > at_success && hook["active"] == true,
        "each delivery has its own retries: a delivery waiting to retry (503) keeps retrying after another event's delivery to the same webhook succeeds (200)",
        format!(
            "{} LESSON_COMPLETION POST(s) (200); COURSE_ENROLLMENT (503): {at_success} POST(s) when the other succeeded, {after} after {:.0} s more; active {}",
            of(ctx, "LESSON_COMPLETION"),
            more.as_secs_f64(),
            hook["active"]
        ),
    )])
}
