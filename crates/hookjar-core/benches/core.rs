//! Micro-benchmarks of the pure rules on the dispatcher's and mock's hot paths:
//! building a payload once, building a delivery request, classifying an outcome,
//! checking a received body, validating a webhook. Run: `cargo bench -p hookjar-core`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use hookjar_core::payload::inspect_body;
use hookjar_core::webhook::webhook_id;
use hookjar_core::{DeliveryRequest, Event, EventType, NewWebhook, Outcome, RetryPolicy, Webhook};
use serde_json::json;
use time::macros::datetime;

fn benches(c: &mut Criterion) {
    let at = datetime!(2026-11-27 09:30:00.123456 UTC);
    c.bench_function("payload: fixture → bytes + digest", |b| {
        b.iter(|| {
            let p = Event::fixture(black_box(EventType::CourseEnrollment), at).to_payload();
            black_box(p.digest())
        })
    });
    let webhook = Webhook::create(
        webhook_id(7),
        NewWebhook::from_json(&json!({
            "target_url": "https://hooks.example.com/skilljar",
            "basic_auth_username": "user",
            "basic_auth_password": "pass",
            "additional_headers": {"x-a": "1", "x-b": "2"}
        }))
        .unwrap(),
    );
    let payload = Event::fixture(EventType::CourseEnrollment, at).to_payload();
    c.bench_function("request: DeliveryRequest::for_webhook", |b| {
        b.iter(|| black_box(DeliveryRequest::for_webhook(&webhook, payload.clone())))
    });
    let policy = RetryPolicy::default();
    c.bench_function("verdict: classify 503 on retry 30", |b| {
        b.iter(|| black_box(policy.classify(black_box(&Outcome::status(503)), black_box(30))))
    });
    let body = payload.bytes().clone();
    c.bench_function("mock: inspect_body (parse + S7/S11 checks)", |b| {
        b.iter(|| black_box(inspect_body(black_box(&body))))
    });
    let input = json!({
        "target_url": "https://hooks.example.com/skilljar",
        "event_type": "COURSE_COMPLETION",
        "additional_headers": {"x-a": "1", "client_id": "abc"}
    });
    c.bench_function("webhook: validate a create body", |b| {
        b.iter(|| black_box(NewWebhook::from_json(black_box(&input))))
    });
}

criterion_group!(core, benches);
criterion_main!(core);
