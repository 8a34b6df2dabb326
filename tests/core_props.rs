//! Property tests of `hookjar-core`'s rules: the retry schedule (S14–S15), verdicts
//! (S15–S18), validation (S2–S6) and the delivery request (S7–S9).

use std::time::Duration;

use hookjar_core::request::{basic_auth_header, decode_basic_auth};
use hookjar_core::webhook::{RESERVED_HEADERS, validate_header, validate_target_url};
use hookjar_core::{
    DeactivateReason, DeliveryRequest, EventType, NewWebhook, Outcome, Payload, RetryPolicy,
    TransportKind, Verdict, WebhookPatch,
};
use proptest::prelude::*;
use serde_json::{Value, json};

fn policy() -> impl Strategy<Value = RetryPolicy> {
    (1u64..10_000, 1u32..5, 0u64..100_000, 0u32..200).prop_map(
        |(base_ms, factor, extra_ms, retries)| {
            RetryPolicy::new(
                Duration::from_millis(base_ms),
                factor,
                Duration::from_millis(base_ms + extra_ms),
                retries,
            )
            .expect("strategy builds valid policies")
        },
    )
}

fn transport_kind() -> impl Strategy<Value = TransportKind> {
    prop_oneof![
        Just(TransportKind::Connect),
        Just(TransportKind::Timeout),
        Just(TransportKind::Reset),
        Just(TransportKind::Tls),
        Just(TransportKind::Protocol),
        Just(TransportKind::Other),
    ]
}

/// Every outcome that is retried: 1xx, 3xx, 5xx, unknown codes, transport errors.
fn retryable_outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        (100u16..200).prop_map(Outcome::status),
        (300u16..400).prop_map(Outcome::status),
        (500u16..600).prop_map(Outcome::status),
        (600u16..1000).prop_map(Outcome::status),
        (transport_kind(), ".{0,20}").prop_map(|(k, d)| Outcome::transport(k, d)),
    ]
}

proptest! {
    /// S14: delays never decrease, never exceed the cap, and the first is the base.
    #[test]
    fn s14_delays_are_monotone_capped_and_start_at_base(p in policy()) {
        let schedule = p.schedule();
        prop_assert_eq!(schedule.len() as u32, p.max_retries + 1);
        prop_assert_eq!(schedule[0].delay, Duration::ZERO);
        if p.max_retries > 0 {
            prop_assert_eq!(p.delay_before_retry(1), Some(p.base_delay));
        }
        for pair in schedule[1..].windows(2) {
            prop_assert!(pair[0].delay <= pair[1].delay);
            prop_assert!(pair[1].at == pair[0].at + pair[1].delay);
        }
        for a in &schedule[1..] {
            prop_assert!(a.delay <= p.max_delay);
            prop_assert!(a.delay >= p.base_delay);
            prop_assert_eq!(p.delay_before_retry(a.attempt), Some(a.delay));
        }
        prop_assert_eq!(schedule.last().unwrap().at, p.total());
        prop_assert_eq!(p.delay_before_retry(p.max_retries + 1), None);
    }

    /// S17: every 2xx is delivered, whatever the attempt.
    #[test]
    fn s17_every_2xx_is_delivered(p in policy(), code in 200u16..300, attempt in 0u32..300) {
        prop_assert_eq!(p.classify(&Outcome::status(code), attempt), Verdict::Delivered);
    }

    /// S16: every 4xx deactivates at once, whatever the attempt.
    #[test]
    fn s16_every_4xx_deactivates_at_once(p in policy(), code in 400u16..500, attempt in 0u32..300) {
        prop_assert_eq!(
            p.classify(&Outcome::status(code), attempt),
            Verdict::Deactivate { reason: DeactivateReason::Http4xxResponse }
        );
    }

    /// S14, S15, S18: everything else is retried after the policy's delay until the
    /// limit, then deactivates with RETRY_COUNT.
    #[test]
    fn s15_other_outcomes_retry_until_the_limit(p in policy(), outcome in retryable_outcome(), attempt in 0u32..300) {
        let verdict = p.classify(&outcome, attempt);
        if attempt < p.max_retries {
            prop_assert_eq!(verdict, Verdict::RetryAfter { delay: p.delay_before_retry(attempt + 1).unwrap() });
        } else {
            prop_assert_eq!(verdict, Verdict::Deactivate { reason: DeactivateReason::RetryCount });
        }
    }

    /// S18: a redirect overflow deactivates with TOO_MANY_REDIRECTS.
    #[test]
    fn s18_redirect_overflow_deactivates(p in policy(), hops in 0u32..100, attempt in 0u32..300) {
        prop_assert_eq!(
            p.classify(&Outcome::TooManyRedirects { hops }, attempt),
            Verdict::Deactivate { reason: DeactivateReason::TooManyRedirects }
        );
    }

    /// S6: validation never panics on arbitrary JSON, and whatever it accepts is valid.
    #[test]
    fn s6_validation_never_panics(input in arbitrary_json(), as_patch in any::<bool>()) {
        if as_patch {
            if let Ok(p) = WebhookPatch::from_json(&input) {
                if let Some(headers) = p.additional_headers {
                    for (k, v) in &headers {
                        prop_assert!(validate_header(k, v).is_ok());
                    }
                }
            }
        } else if let Ok(w) = NewWebhook::from_json(&input) {
            prop_assert!(w.target_url.starts_with("http"));
        }
    }

    /// S6: webhook-shaped input is accepted exactly when every field is valid, and a
    /// refusal names exactly the fields that are wrong.
    #[test]
    fn s6_validation_of_webhook_shaped_input(
        url in prop_oneof![".{0,40}", "https?://[a-z]{1,8}\\.example(/[a-z]{0,8})?"],
        name in prop_oneof![".{0,12}", "x-[a-z]{1,8}"],
        value in ".{0,12}",
        event_type in prop_oneof![".{0,20}", Just("COURSE_COMPLETION".to_owned()), Just(String::new())],
    ) {
        let body = json!({"target_url": url, "event_type": event_type, "additional_headers": {name.clone(): value.clone()}});
        let url_ok = validate_target_url(&url).is_ok();
        let type_ok = event_type.trim().is_empty() || EventType::ALL.iter().any(|t| t.as_str() == event_type);
        let header_ok = validate_header(&name, &value).is_ok();
        match NewWebhook::from_json(&body) {
            Ok(w) => {
                prop_assert!(url_ok && type_ok && header_ok);
                prop_assert_eq!(&w.target_url, &url);
                prop_assert_eq!(w.additional_headers.get(&name), Some(&value));
            }
            Err(e) => {
                prop_assert!(!(url_ok && type_ok && header_ok), "refused valid input: {}", e);
                prop_assert_eq!(e.field("target_url").is_empty(), url_ok, "{}", e);
                prop_assert_eq!(e.field("event_type").is_empty(), type_ok, "{}", e);
                prop_assert_eq!(e.field("additional_headers").is_empty(), header_ok, "{}", e);
            }
        }
        let pairs = vec![("target_url".to_owned(), url), ("additional_headers".to_owned(), body["additional_headers"].to_string())];
        prop_assert_eq!(NewWebhook::from_form(&pairs).is_ok(), url_ok && header_ok);
    }

    /// S6, S9: every accepted header survives a round trip into an `http::HeaderMap`
    /// unchanged, and is never one the dispatcher owns.
    #[test]
    fn s9_accepted_headers_round_trip_into_header_map(name in "[!-~]{1,16}", value in "\\PC{0,24}") {
        if validate_header(&name, &value).is_ok() {
            prop_assert!(!RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()));
            let hn = http::HeaderName::from_bytes(name.as_bytes());
            prop_assert!(hn.is_ok(), "name {name:?}");
            let hv = http::HeaderValue::from_bytes(value.as_bytes());
            prop_assert!(hv.is_ok(), "value {value:?}");
            let mut map = http::HeaderMap::new();
            map.insert(hn.unwrap(), hv.unwrap());
            prop_assert_eq!(map.get(name.as_str()).unwrap().as_bytes(), value.as_bytes());
        }
    }

    /// S7–S9: the request of any valid webhook carries exactly the S7 headers, Basic
    /// auth when either half is set, and every additional header verbatim.
    #[test]
    fn s8_request_headers_for_any_webhook(
        user in "[^:\\p{C}]{0,12}",
        pass in "\\PC{0,12}",
        extra in proptest::collection::btree_map("x-[a-z0-9-]{1,10}", "[ -~]{0,10}", 0..4),
    ) {
        let extra: std::collections::BTreeMap<String, String> =
            extra.into_iter().filter(|(k, v)| validate_header(k, v).is_ok()).collect();
        let req = DeliveryRequest::new("https://example.com/h", &user, &pass, &extra, Payload::from_bytes(&b"{}"[..]));
        prop_assert_eq!(req.header("content-type"), Some("application/json"));
        prop_assert_eq!(req.header("user-agent"), Some("skilljar"));
        match req.header("authorization") {
            None => prop_assert!(user.is_empty() && pass.is_empty()),
            Some(v) => prop_assert_eq!(decode_basic_auth(v), Some((user.clone(), pass.clone()))),
        }
        prop_assert_eq!(req.headers.len(), 2 + usize::from(basic_auth_header(&user, &pass).is_some()) + extra.len());
        for (k, v) in &extra {
            prop_assert_eq!(req.header(k), Some(v.as_str()));
        }
        prop_assert!(req.header_map().is_ok());
    }
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        ".{0,30}".prop_map(Value::String),
        prop_oneof![
            Just("target_url"),
            Just("active"),
            Just("event_type"),
            Just("additional_headers"),
            Just("https://example.com/x"),
            Just("COURSE_COMPLETION"),
            Just("********"),
        ]
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("target_url".to_owned()),
                    Just("active".to_owned()),
                    Just("event_type".to_owned()),
                    Just("basic_auth_username".to_owned()),
                    Just("basic_auth_password".to_owned()),
                    Just("additional_headers".to_owned()),
                    Just("id".to_owned()),
                    "[a-z_ ]{1,8}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// S15: with the defaults there are exactly 60 retries summing to 180,494 s.
#[test]
fn s15_default_schedule_totals() {
    let p = RetryPolicy::default();
    let schedule = p.schedule();
    assert_eq!(schedule.len(), 61);
    let delays: Vec<u64> = schedule[1..].iter().map(|a| a.delay.as_secs()).collect();
    let mut expected: Vec<u64> = (1..=11).map(|i| 1u64 << i).collect();
    expected.extend(std::iter::repeat_n(3600, 49));
    assert_eq!(delays, expected);
    assert_eq!(p.total(), Duration::from_secs(180_494));
}
