//! The reference dispatcher delivering to the mock receiver, across crates: payload
//! shape for every event type (S10, S11), headers for arbitrary webhooks (S7–S9),
//! back-off timing for arbitrary failure scripts (S14, S15, S18) and deactivation for
//! every 4xx (S16) — all in virtual time — plus snapshots of `simulate`'s timeline.

use std::time::Duration;

use hookjar_conformance::simulate::{SimulateConfig, Timeline, simulate};
use hookjar_core::webhook::validate_header;
use hookjar_core::{EventType, RetryPolicy, fixtures};
use hookjar_dispatch::{Config, Dispatcher, StoreConfig};
use hookjar_mock::MockReceiver;
use hookjar_tests::snapshot_settings;
use proptest::prelude::*;
use serde_json::{Value, json};

const KEY: &str = "k";

fn paused_runtime() -> tokio::runtime::Runtime {
    hookjar_conformance::virtual_runtime().unwrap()
}

async fn start_dispatcher() -> Dispatcher {
    Dispatcher::start(
        Config {
            api_key: KEY.into(),
            store: StoreConfig::InMemory,
            ..Config::default()
        },
        "127.0.0.1:0",
    )
    .await
    .unwrap()
}

async fn api(
    d: &Dispatcher,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{}{path}", d.url()))
        .basic_auth(KEY, Some(""));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let code = resp.status().as_u16();
    (code, resp.json().await.unwrap_or(Value::Null))
}

fn sim(script: &str) -> Timeline {
    paused_runtime()
        .block_on(simulate(&SimulateConfig {
            script: script.into(),
            ..SimulateConfig::default()
        }))
        .unwrap()
}

/// S10, S11: for every type, the receiver gets the fixture's objects, in order, under
/// a fresh S11 timestamp.
#[test]
fn s11_payload_shape_for_every_event_type() {
    paused_runtime().block_on(async {
        let mock = MockReceiver::builder().start().await.unwrap();
        let d = start_dispatcher().await;
        let (code, _) = api(
            &d,
            reqwest::Method::POST,
            "/v1/webhooks",
            Some(json!({"target_url": format!("{}/all", mock.url())})),
        )
        .await;
        assert_eq!(code, 201);
        for t in EventType::ALL {
            let (code, _) = api(
                &d,
                reqwest::Method::POST,
                "/v1/events",
                Some(json!({"event_type": t})),
            )
            .await;
            assert_eq!(code, 202);
        }
        let reqs = mock
            .wait_for_requests(10, Duration::from_secs(30))
            .await
            .unwrap();
        for t in EventType::ALL {
            let r = reqs
                .iter()
                .find(|r| r.event_type.as_deref() == Some(t.as_str()))
                .unwrap_or_else(|| panic!("no {t} delivered"));
            assert!(r.violations.is_empty(), "{t}: {:?}", r.violations);
            let got = r.json.clone().unwrap();
            let mut want = fixtures::value(t);
            want["timestamp"] = got["timestamp"].clone();
            assert_eq!(got, want, "{t}");
            let got_keys: Vec<&String> = got.as_object().unwrap().keys().collect();
            let want_keys: Vec<&String> = want.as_object().unwrap().keys().collect();
            assert_eq!(got_keys, want_keys, "{t}: key order");
        }
        d.shutdown().await;
    });
}

/// S15, S14: `503` forever — 61 attempts with the policy's gaps, then RETRY_COUNT.
#[test]
fn s15_simulate_503_forever() {
    let t = sim("503");
    assert_eq!(t.attempts.len(), 61);
    let policy = RetryPolicy::default();
    for a in &t.attempts[..60] {
        assert_eq!(a.verdict, "retry");
        let expected = policy.delay_before_retry(a.attempt + 1).unwrap().as_secs();
        assert_eq!(
            a.next_delay_s,
            Some(json!(expected)),
            "attempt {}",
            a.attempt
        );
    }
    assert_eq!(t.attempts[60].verdict, "deactivate");
    assert_eq!(t.attempts[60].at_s, json!(180_494));
    assert!(!t.final_state.active);
    assert_eq!(
        t.final_state.deactivate_reason.as_deref(),
        Some("RETRY_COUNT")
    );
}

/// `simulate` output, pinned.
#[test]
fn simulate_snapshots() {
    snapshot_settings().bind(|| {
        let t = sim("503*3,200");
        insta::assert_json_snapshot!("simulate__503x3_200", t);
        insta::assert_snapshot!("simulate__503x3_200_table", t.to_table());
        insta::assert_snapshot!(
            "simulate__reset_hang_404_table",
            sim("reset,hang,404").to_table()
        );
    });
}

/// S16: every 4xx deactivates after exactly one POST.
#[test]
fn s16_every_4xx_deactivates_after_one_post() {
    let rt = paused_runtime();
    for code in 400u16..500 {
        let t = rt
            .block_on(simulate(&SimulateConfig {
                script: code.to_string(),
                ..SimulateConfig::default()
            }))
            .unwrap();
        assert_eq!(t.attempts.len(), 1, "{code}");
        assert_eq!(t.attempts[0].status, Some(code));
        assert_eq!(t.attempts[0].verdict, "deactivate", "{code}");
        assert_eq!(
            t.final_state.deactivate_reason.as_deref(),
            Some("HTTP_4XX_RESPONSE"),
            "{code}"
        );
    }
}

/// A failure step: a 5xx, a 3xx that is not a redirect to follow, or a transport failure.
fn failure_step() -> impl Strategy<Value = String> {
    prop_oneof![
        (500u16..600).prop_map(|c| c.to_string()),
        prop_oneof![Just(304u16), Just(300)].prop_map(|c| c.to_string()),
        Just("reset".to_owned()),
        Just("garbage".to_owned()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// S14, S18: for any run of failures then a 200, the dispatcher waits exactly the
    /// policy's delays and delivers on the last attempt.
    #[test]
    fn s14_backoff_gaps_equal_the_policy_for_any_failure_script(
        failures in proptest::collection::vec(failure_step(), 0..12),
    ) {
        let mut steps = failures.clone();
        steps.push("200".into());
        let t = sim(&steps.join(","));
        let policy = RetryPolicy::default();
        prop_assert_eq!(t.attempts.len(), failures.len() + 1);
        let mut at = Duration::ZERO;
        for a in &t.attempts {
            prop_assert_eq!(a.at_s.as_f64().unwrap(), at.as_secs_f64(), "attempt {}", a.attempt);
            if let Some(d) = policy.delay_before_retry(a.attempt + 1) {
                if a.verdict == "retry" {
                    at += d;
                }
            }
        }
        prop_assert_eq!(t.attempts.last().unwrap().verdict.as_str(), "delivered");
        prop_assert!(t.final_state.active);
        prop_assert_eq!(t.final_state.delivery.as_str(), "delivered");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// S7–S9: whatever valid credentials and header set a webhook has, its POST carries
    /// Content-Type, User-Agent, Basic auth (when set) and every header verbatim.
    #[test]
    fn s8_headers_for_arbitrary_webhooks(
        user in "[a-zA-Z0-9._@-]{0,12}",
        pass in "[ -~]{0,16}",
        headers in proptest::collection::btree_map("x-[a-z0-9-]{1,10}", "[!-~]([ -~]{0,10}[!-~])?", 0..4),
    ) {
        let headers: std::collections::BTreeMap<String, String> =
            headers.into_iter().filter(|(k, v)| validate_header(k, v).is_ok()).collect();
        let rt = paused_runtime();
        let result: Result<(), TestCaseError> = rt.block_on(async {
            let mock = MockReceiver::builder().start().await.unwrap();
            let d = start_dispatcher().await;
            let (code, body) = api(&d, reqwest::Method::POST, "/v1/webhooks", Some(json!({
                "target_url": format!("{}/h", mock.url()),
                "basic_auth_username": user,
                "basic_auth_password": pass,
                "additional_headers": headers,
            }))).await;
            prop_assert_eq!(code, 201, "{}", body);
            api(&d, reqwest::Method::POST, "/v1/events", Some(json!({"event_type": "PATH_ENROLLMENT"}))).await;
            let reqs = mock.wait_for_requests(1, Duration::from_secs(30)).await.unwrap();
            let r = &reqs[0];
            prop_assert_eq!(r.header("content-type"), Some("application/json"));
            prop_assert_eq!(r.header("user-agent"), Some("skilljar"));
            let expected = hookjar_core::request::basic_auth_header(&user, &pass);
            prop_assert_eq!(r.header("authorization").map(str::to_owned), expected);
            for (k, v) in &headers {
                prop_assert_eq!(r.header(k), Some(v.as_str()), "header {}", k);
            }
            prop_assert!(r.violations.is_empty(), "{:?}", r.violations);
            d.shutdown().await;
            Ok(())
        });
        result?;
    }
}
