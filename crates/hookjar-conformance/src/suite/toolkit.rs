//! Toolkit extension cases: X2 delivery log, X5 identical bytes.

use std::collections::BTreeSet;
use std::time::Duration;

use hookjar_core::EventType;
use serde_json::{Value, json};

use super::CaseOutput;
use super::context::Ctx;
use crate::report::CaseResult;

pub(super) async fn x5_same_bytes(ctx: &mut Ctx) -> CaseOutput {
    let id = ctx
        .hook("/x5", Some(EventType::ViltEventRegistration))
        .await?;
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
    // X2: the log shows the delivery with its three attempts; redeliver resends the bytes.
    let (code, deliveries) = ctx.deliveries(&id).await?;
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
    Ok(vec![same, log])
}
