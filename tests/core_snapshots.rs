//! insta snapshots of what `hookjar-core` produces: fixture payloads (S11), the
//! delivery request headers (S7–S9) and a validation error body (S6).

use hookjar_core::webhook::webhook_id;
use hookjar_core::{DeliveryRequest, Event, EventType, NewWebhook, Webhook};
use hookjar_tests::snapshot_settings;
use serde_json::json;
use time::macros::datetime;

/// S11: every fixture, re-stamped, as the bytes the dispatcher would send.
#[test]
fn s11_fixture_payloads() {
    let at = datetime!(2026-11-27 09:30:00.123456 UTC);
    snapshot_settings().bind(|| {
        for t in EventType::ALL {
            let payload = Event::fixture(t, at).to_payload();
            let value: serde_json::Value = serde_json::from_slice(payload.bytes()).unwrap();
            let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
            assert_eq!(keys[0], "event_type");
            assert_eq!(keys[1], "timestamp");
            insta::assert_json_snapshot!(format!("core__payload_{}", t.as_str()), value);
        }
        let ping: serde_json::Value =
            serde_json::from_slice(Event::ping(at).to_payload().bytes()).unwrap();
        insta::assert_json_snapshot!("core__payload_PING", ping);
    });
}

/// S7–S9: the headers of a webhook with Basic auth and two additional headers.
#[test]
fn s8_delivery_request_headers() {
    let mut new = NewWebhook::from_json(&json!({
        "target_url": "https://hooks.example.com/skilljar",
        "event_type": "COURSE_ENROLLMENT",
        "basic_auth_username": "customer_username_input",
        "basic_auth_password": "customer_password_input",
        "additional_headers": {"x-my-new-header": "string", "client_id": "examplestring2"}
    }))
    .unwrap();
    new.active = true;
    let webhook = Webhook::create(webhook_id(42), new);
    let payload =
        Event::fixture(EventType::CourseEnrollment, datetime!(2026-01-01 0:00 UTC)).to_payload();
    let req = DeliveryRequest::for_webhook(&webhook, payload);
    assert_eq!(DeliveryRequest::METHOD, "POST");
    assert_eq!(req.url, "https://hooks.example.com/skilljar");
    let lines: Vec<String> = req
        .headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    snapshot_settings().bind(|| {
        insta::assert_snapshot!("core__delivery_request_headers", lines.join("\n"));
    });
}

/// S6: one 400 body with several field errors at once.
#[test]
fn s6_validation_error_body() {
    let err = NewWebhook::from_json(&json!({
        "target_url": "not a url",
        "active": "sometimes",
        "event_type": "COURSE_STARTED",
        "additional_headers": {"User-Agent": "mine", "x-ok": "fine", "bad header": "x"},
        "colour": "blue"
    }))
    .unwrap_err();
    snapshot_settings().bind(|| {
        insta::assert_json_snapshot!("core__validation_400_body", err);
    });
}
