//! Retry and deactivation cases: S14 back-off, S15 retry limit, S16 4xx, S17 2xx,
//! S18 other outcomes, S19 guarantees.

use std::time::Duration;

use hookjar_core::EventType;
use hookjar_core::verdict::human_duration;
use serde_json::json;

use super::CaseOutput;
use super::context::{Ctx, fmt_secs};
use crate::report::{CaseResult, Status};

pub(super) async fn s14_backoff(ctx: &mut Ctx) -> CaseOutput {
    let id = ctx.hook("/s14", Some(EventType::CourseCompletion)).await?;
    ctx.emit(EventType::CourseCompletion, json!({})).await?;
    let budget = ctx
        .policy
        .schedule()
        .get(5)
        .map_or(Duration::from_secs(120), |a| a.at)
        + Duration::from_secs(10);
    let reqs = ctx.wait(6, budget).await;
    ctx.settle(
        ctx.policy
            .delay_before_retry(6)
            .unwrap_or(Duration::from_secs(64)),
    )
    .await;
    let reqs_after = ctx.mock.requests();
    let gaps = ctx.gaps(&reqs);
    let hook = ctx.webhook(&id).await?;
    let mismatch = ctx.gap_mismatch(&gaps);
    let expected: Vec<Duration> = (1..=5)
        .filter_map(|n| ctx.policy.delay_before_retry(n))
        .collect();
    Ok(vec![CaseResult::check(
        "S14.backoff",
        "S14",
        reqs.len() == 6 && reqs_after.len() == 6 && mismatch.is_none() && hook["active"] == true,
        format!(
            "503 ×5 then 200: 6 POSTs with gaps {} s, then no more; webhook stays active",
            fmt_secs(&expected)
        ),
        format!(
            "{} POSTs (then {}), gaps {} s{}; active {}",
            reqs.len(),
            reqs_after.len(),
            fmt_secs(&gaps),
            mismatch.map(|m| format!(" — {m}")).unwrap_or_default(),
            hook["active"]
        ),
    )])
}

pub(super) async fn s15_exhaustion(ctx: &mut Ctx) -> CaseOutput {
    if ctx.quick {
        return Ok(vec![CaseResult::new(
            "S15.exhaustion",
            "S15",
            Status::Skip,
            "61 POSTs then RETRY_COUNT",
            "--quick skips the full retry life-cycle",
        )]);
    }
    let id = ctx.hook("/s15", Some(EventType::QuizCompletion)).await?;
    ctx.emit(EventType::QuizCompletion, json!({})).await?;
    let total = ctx.policy.max_retries as usize + 1;
    let reqs = ctx
        .wait(total, ctx.policy.total() + Duration::from_secs(60))
        .await;
    let hook = ctx
        .until_webhook(&id, Duration::from_secs(60), |v| v["active"] == false)
        .await?;
    ctx.settle(Duration::from_secs(7200)).await;
    let after = ctx.mock.requests().len();
    let gaps = ctx.gaps(&reqs);
    let mismatch = ctx.gap_mismatch(&gaps);
    let span: Duration = gaps.iter().sum();
    Ok(vec![CaseResult::check(
        "S15.exhaustion",
        "S15",
        reqs.len() == total
            && after == total
            && mismatch.is_none()
            && hook["active"] == false
            && hook["deactivate_reason"] == "RETRY_COUNT",
        format!(
            "503 forever: {total} POSTs over {} ({} s), then active false with RETRY_COUNT and nothing more",
            human_duration(ctx.policy.total()),
            ctx.policy.total().as_secs()
        ),
        format!(
            "{} POSTs over {:.0} s (then {after}){}; active {}, deactivate_reason {}",
            reqs.len(),
            span.as_secs_f64(),
            mismatch.map(|m| format!(" — {m}")).unwrap_or_default(),
            hook["active"],
            hook["deactivate_reason"]
        ),
    )])
}

pub(super) async fn s16_deactivate(ctx: &mut Ctx) -> CaseOutput {
    let id = ctx.hook("/s16", Some(EventType::LessonCompletion)).await?;
    ctx.emit(EventType::LessonCompletion, json!({})).await?;
    ctx.wait(1, Duration::from_secs(10)).await;
    let hook = ctx
        .until_webhook(&id, Duration::from_secs(10), |v| v["active"] == false)
        .await?;
    ctx.emit(EventType::LessonCompletion, json!({})).await?;
    ctx.settle(Duration::from_secs(120)).await;
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
    // Re-activate (S4) on a URL that answers 200: new events flow again.
    let (code, v) = ctx
        .api
        .json(
            reqwest::Method::PUT,
            &format!("/v1/webhooks/{id}"),
            Some(&json!({"active": true, "target_url": ctx.mock_url("/ok")})),
        )
        .await?;
    ctx.mock.clear();
    ctx.emit(EventType::LessonCompletion, json!({})).await?;
    let reqs = ctx.wait(1, Duration::from_secs(10)).await;
    let react = CaseResult::check(
        "S4.reactivate",
        "S4",
        code == 200 && v["active"] == true && v["deactivate_reason"].is_null() && reqs.len() == 1,
        "PUT {active: true} clears deactivate_reason and the webhook receives new events",
        format!(
            "{code}: active {}, deactivate_reason {}; {} POST(s) after",
            v["active"],
            v["deactivate_reason"],
            reqs.len()
        ),
    );
    Ok(vec![deact, react])
}

pub(super) async fn s17_success(ctx: &mut Ctx) -> CaseOutput {
    let id = ctx.hook("/ok", Some(EventType::DomainEnrollment)).await?;
    ctx.emit(EventType::DomainEnrollment, json!({})).await?;
    ctx.wait(1, Duration::from_secs(10)).await;
    ctx.settle(Duration::from_secs(60)).await;
    let posts = ctx.mock.requests().len();
    let hook = ctx.webhook(&id).await?;
    Ok(vec![CaseResult::check(
        "S17.success",
        "S17",
        posts == 1 && hook["active"] == true,
        "a 200 → exactly one POST, no retry, webhook stays active",
        format!("{posts} POST(s) in 60 s; active {}", hook["active"]),
    )])
}

pub(super) async fn s18_other(ctx: &mut Ctx) -> CaseOutput {
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
        "a redirect loop is followed 10 times (11 requests), then the webhook is deactivated with TOO_MANY_REDIRECTS",
        format!(
            "{hops} requests; active {}, deactivate_reason {}",
            hook["active"], hook["deactivate_reason"]
        ),
    );
    ctx.mock.clear();
    let id = ctx
        .hook("/s18-reset", Some(EventType::PurchaseFulfillment))
        .await?;
    ctx.emit(EventType::PurchaseFulfillment, json!({})).await?;
    let reqs = ctx.wait(2, Duration::from_secs(30)).await;
    let gaps = ctx.gaps(&reqs);
    let mismatch = ctx.gap_mismatch(&gaps);
    let hook = ctx.webhook(&id).await?;
    let transport = CaseResult::check(
        "S18.transport",
        "S18",
        reqs.len() == 2 && mismatch.is_none() && hook["active"] == true,
        "a reset connection is retried like a 5xx (second POST 2 s later) and does not deactivate",
        format!(
            "{} POSTs, gaps {} s{}; active {}",
            reqs.len(),
            fmt_secs(&gaps),
            mismatch.map(|m| format!(" — {m}")).unwrap_or_default(),
            hook["active"]
        ),
    );
    Ok(vec![redirects, transport])
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
