//! The dispatcher against the spec, clause by clause, over HTTP on loopback.
//!
//! Each test's name starts with the clause it proves (`s14_…`). Timing tests run on
//! tokio's paused clock with the in-process receiver of `support` (two days of
//! back-off take no real time); header tests use wiremock on a real clock.

mod support;

use std::time::Duration;

use hookjar_core::{EventType, RetryPolicy};
use serde_json::{Value, json};
use support::{Api, KEY, Receiver, Reply, dispatcher, eventually, settle, snapshot_settings};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const HOUR: Duration = Duration::from_secs(3600);
const TIMESTAMP_RE: &str = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+00:00$";

fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() == 32
        && s.ends_with("+00:00")
        && b[4] == b'-'
        && b[10] == b'T'
        && b[19] == b'.'
        && s[20..26].bytes().all(|c| c.is_ascii_digit())
}

/// Seconds between consecutive requests, rounded to the millisecond.
fn gaps(received: &[support::Received]) -> Vec<f64> {
    received
        .windows(2)
        .map(|w| ((w[1].at - w[0].at).as_secs_f64() * 1000.0).round() / 1000.0)
        .collect()
}

// ---------------------------------------------------------------------------
// Management API (S1–S6b)
// ---------------------------------------------------------------------------

#[tokio::test]
async fn s1_list_paginates_oldest_first_with_absolute_links() {
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    let mut ids = Vec::new();
    for i in 0..25 {
        ids.push(api.hook(&format!("https://example.com/h{i}")).await);
    }
    let first = api.get("/v1/webhooks").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body["count"], 25);
    assert_eq!(
        first.body["results"].as_array().unwrap().len(),
        20,
        "default page size 20"
    );
    assert_eq!(
        first.body["results"][0]["id"],
        ids[0].as_str(),
        "oldest first"
    );
    assert_eq!(first.body["previous"], Value::Null);
    let next = first.body["next"].as_str().unwrap();
    assert_eq!(
        next,
        format!("{}/v1/webhooks?page=2", server.url()),
        "absolute, from Host"
    );

    let second = api.send(api.http.get(next)).await;
    assert_eq!(second.body["results"].as_array().unwrap().len(), 5);
    assert_eq!(second.body["results"][4]["id"], ids[24].as_str());
    assert_eq!(second.body["next"], Value::Null);
    assert_eq!(
        second.body["previous"],
        format!("{}/v1/webhooks", server.url())
    );

    let small = api.get("/v1/webhooks?page_size=10&page=2").await;
    assert_eq!(small.body["results"][0]["id"], ids[10].as_str());
    assert_eq!(
        small.body["next"],
        format!("{}/v1/webhooks?page=3&page_size=10", server.url())
    );
    let clamped = api.get("/v1/webhooks?page_size=500").await;
    assert_eq!(
        clamped.body["results"].as_array().unwrap().len(),
        25,
        "max 100 covers all"
    );
    let beyond = api.get("/v1/webhooks?page=3").await;
    assert_eq!(
        (beyond.status, beyond.body.clone()),
        (404, json!({"detail": "Invalid page."}))
    );
    let bad = api.get("/v1/webhooks?page=zero").await;
    assert_eq!(bad.status, 404);

    // The Host header decides the links' authority.
    let via_host = api
        .send(
            api.http
                .get(api.url("/v1/webhooks"))
                .header("Host", "hooks.example:8750"),
        )
        .await;
    assert_eq!(
        via_host.body["next"],
        "http://hooks.example:8750/v1/webhooks?page=2"
    );
}

#[tokio::test]
async fn s1_list_page_snapshot() {
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    api.create(json!({"target_url": "https://example.com/a", "event_type": "COURSE_ENROLLMENT"}))
        .await;
    api.create(json!({"target_url": "https://example.com/b", "basic_auth_username": "u", "basic_auth_password": "p"}))
        .await;
    api.create(json!({"target_url": "https://example.com/c", "active": false}))
        .await;
    let page = api.get("/v1/webhooks?page_size=2").await;
    snapshot_settings().bind(|| {
        insta::assert_json_snapshot!("dispatch__list_page", page.body, {".results[].id" => "[id]"});
    });
}

#[tokio::test]
async fn s2_create_from_json_form_and_multipart() {
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);

    let j = api
        .create(
            json!({"target_url": "https://example.com/json", "event_type": "COURSE_ENROLLMENT"}),
        )
        .await;
    assert_eq!(j["active"], true, "active defaults to true");
    assert_eq!(j["event_type"], "COURSE_ENROLLMENT");
    assert_eq!(j["basic_auth_username"], "");
    assert_eq!(j["basic_auth_password"], "");
    assert_eq!(j["additional_headers"], json!({}));
    assert_eq!(j["deactivate_reason"], Value::Null);
    let id = j["id"].as_str().unwrap();
    assert!(
        hookjar_core::webhook::is_valid_id(id) && id.len() == 13,
        "{id}"
    );

    let form = api
        .send(api.http.post(api.url("/v1/webhooks")).form(&[
            ("target_url", "https://example.com/form"),
            ("active", "true"),
            ("event_type", ""),
            (
                "additional_headers",
                r#"{"example_client_id":"abdcjkcjdidshdshkn"}"#,
            ),
        ]))
        .await;
    assert_eq!(form.status, 201, "{form:?}");
    assert_eq!(form.body["event_type"], Value::Null, "blank = all types");
    assert_eq!(
        form.body["additional_headers"]["example_client_id"],
        "abdcjkcjdidshdshkn"
    );

    let boundary = "XyZ";
    let multipart = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"target_url\"\r\n\r\nhttps://example.com/multi\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"event_type\"\r\n\r\nLESSON_COMPLETION\r\n--{boundary}--\r\n"
    );
    let multi = api
        .send(
            api.http
                .post(api.url("/v1/webhooks"))
                .header(
                    "Content-Type",
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .body(multipart),
        )
        .await;
    assert_eq!(multi.status, 201, "{multi:?}");
    assert_eq!(multi.body["event_type"], "LESSON_COMPLETION");
    assert_eq!(api.count_webhooks().await, 3);
}

#[tokio::test]
async fn s3_password_is_masked_and_the_mask_keeps_it() {
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    let w = api
        .create(json!({
            "target_url": "https://example.com/h",
            "event_type": "COURSE_ENROLLMENT",
            "basic_auth_username": "customer_username_input",
            "basic_auth_password": "customer_password_input",
            "additional_headers": {"x-my-new-header": "string", "client_id": "examplestring2"}
        }))
        .await;
    snapshot_settings().bind(|| {
        insta::assert_json_snapshot!("dispatch__webhook_masked", w, {".id" => "[id]"});
    });
    let id = w["id"].as_str().unwrap();
    assert_eq!(api.webhook(id).await["basic_auth_password"], "********");
    // A GET → PUT round trip sends the mask back: the stored password is kept.
    let mut back = api.webhook(id).await;
    back["target_url"] = json!("https://example.com/h2");
    let put = api.put_json(&format!("/v1/webhooks/{id}"), back).await;
    assert_eq!(put.status, 200, "{put:?}");
    drop(server);

    let revealing = dispatcher(|c| c.reveal_secrets = true).await;
    let api = Api::new(&revealing);
    let w = api
        .create(json!({"target_url": "https://example.com/h", "basic_auth_password": "pw"}))
        .await;
    assert_eq!(
        w["basic_auth_password"], "pw",
        "--reveal-secrets shows it, as Skilljar does"
    );
}

#[tokio::test]
async fn s3_mask_round_trip_keeps_the_password_that_is_sent() {
    let receiver = wiremock_200().await;
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    let w = api
        .create(json!({"target_url": receiver.uri(), "basic_auth_username": "u", "basic_auth_password": "secret"}))
        .await;
    let id = w["id"].as_str().unwrap();
    let put = api
        .put_json(
            &format!("/v1/webhooks/{id}"),
            json!({"basic_auth_password": "********"}),
        )
        .await;
    assert_eq!(put.status, 200);
    let ping = api
        .post_json(&format!("/v1/webhooks/{id}/ping"), json!({}))
        .await;
    assert_eq!(ping.body["succeeded"], true);
    let req = &receiver.received_requests().await.unwrap()[0];
    let auth = req.headers.get("authorization").unwrap().to_str().unwrap();
    assert_eq!(
        hookjar_core::request::decode_basic_auth(auth),
        Some(("u".into(), "secret".into()))
    );
}

#[tokio::test]
async fn s4_retrieve_put_patch_delete() {
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    let id = api.hook("https://example.com/a").await;
    let path = format!("/v1/webhooks/{id}");

    let put = api
        .put_json(&path, json!({"target_url": "https://example.com/b"}))
        .await;
    assert_eq!(put.status, 200, "PUT accepts a partial body");
    assert_eq!(put.body["target_url"], "https://example.com/b");
    assert_eq!(put.body["active"], true);

    let patch = api
        .patch_json(
            &path,
            json!({"active": false, "event_type": "PATH_COMPLETION"}),
        )
        .await;
    assert_eq!(patch.body["active"], false);
    assert_eq!(patch.body["event_type"], "PATH_COMPLETION");
    assert_eq!(api.webhook(&id).await, patch.body);

    let del = api.delete(&path).await;
    assert_eq!(
        (del.status, del.body),
        (204, Value::Null),
        "204 with no body"
    );
    let gone = api.get(&path).await;
    assert_eq!(
        (gone.status, gone.body),
        (404, json!({"detail": "Not found."}))
    );
    assert_eq!(
        api.put_json(&path, json!({"active": true})).await.status,
        404
    );
    assert_eq!(api.delete(&path).await.status, 404);
}

#[tokio::test(start_paused = true)]
async fn s4_reactivated_by_put_receives_new_events() {
    let receiver = Receiver::start(&[Reply::Status(404), Reply::Status(200)]).await;
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    let id = api.hook(&receiver.url).await;
    api.emit("COURSE_ENROLLMENT").await;
    receiver.wait_for(1, HOUR).await;
    settle().await;
    assert_eq!(
        api.webhook(&id).await["deactivate_reason"],
        "HTTP_4XX_RESPONSE"
    );
    assert_eq!(
        api.emit("COURSE_ENROLLMENT").await["deliveries"],
        0,
        "inactive gets nothing"
    );

    let put = api
        .put_json(&format!("/v1/webhooks/{id}"), json!({"active": true}))
        .await;
    assert_eq!(put.body["active"], true);
    assert_eq!(
        put.body["deactivate_reason"],
        Value::Null,
        "re-activation clears the reason"
    );
    assert_eq!(api.emit("LESSON_COMPLETION").await["deliveries"], 1);
    let got = receiver.wait_for(2, HOUR).await;
    assert_eq!(got[1].json()["event_type"], "LESSON_COMPLETION");
    settle().await;
    let log = api.deliveries(&id).await;
    assert_eq!(log.last().unwrap()["state"], "delivered");
}

#[tokio::test]
async fn s5_api_key_as_basic_username_only() {
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    let url = api.url("/v1/ping");
    let raw =
        |r: reqwest::RequestBuilder| async move { Api::answer(r.send().await.unwrap()).await };

    let ok = api.get("/v1/ping").await;
    assert_eq!((ok.status, ok.body), (200, Value::Null), "empty 200");

    let missing = raw(api.http.get(&url)).await;
    assert_eq!(missing.status, 401);
    assert_eq!(
        missing.body["detail"],
        "Authentication credentials were not provided."
    );
    assert!(
        missing.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );

    let wrong = raw(api.http.get(&url).basic_auth("nope", Some(""))).await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.body["detail"], "Invalid username/password.");
    assert!(wrong.headers.contains_key("www-authenticate"));

    let as_password = raw(api.http.get(&url).basic_auth("", Some(KEY))).await;
    assert_eq!(as_password.status, 401, "the key goes in the username");

    let bearer = raw(api.http.get(&url).bearer_auth(KEY)).await;
    assert_eq!(bearer.status, 401);
    let msg = bearer.body["detail"].as_str().unwrap();
    assert!(
        msg.contains("Basic") && msg.contains("username"),
        "says how: {msg}"
    );

    let unauth_list = raw(api.http.get(api.url("/v1/webhooks"))).await;
    assert_eq!(unauth_list.status, 401);
    let openapi = raw(api.http.get(api.url("/openapi.json"))).await;
    assert_eq!(openapi.status, 200, "the OpenAPI document needs no key");
}

#[tokio::test]
async fn s6_bad_input_table_is_refused_and_changes_nothing() {
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    let id = api.hook("https://example.com/keep").await;
    let before = api.webhook(&id).await;
    let url = |p: &str| api.url(p);

    // (name, request, status, field the body names)
    let json_req = |body: &str| {
        api.http
            .post(url("/v1/webhooks"))
            .header("Content-Type", "application/json")
            .body(body.to_owned())
    };
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "bad JSON",
            json_req("{\"target_url\": "),
            400,
            "non_field_errors",
        ),
        (
            "unknown event type",
            json_req(r#"{"target_url": "https://e.com", "event_type": "COURSE_STARTED"}"#),
            400,
            "event_type",
        ),
        (
            "ftp URL",
            json_req(r#"{"target_url": "ftp://example.com/x"}"#),
            400,
            "target_url",
        ),
        (
            "header with CR/LF",
            json_req(r#"{"target_url": "https://e.com", "additional_headers": {"X-A": "a\r\nb"}}"#),
            400,
            "additional_headers",
        ),
        (
            "reserved header",
            json_req(
                r#"{"target_url": "https://e.com", "additional_headers": {"User-Agent": "me"}}"#,
            ),
            400,
            "additional_headers",
        ),
        (
            "over-long URL",
            json_req(&format!(
                r#"{{"target_url": "https://e.com/{}"}}"#,
                "a".repeat(1100)
            )),
            400,
            "target_url",
        ),
        (
            "unknown field",
            json_req(r#"{"target_url": "https://e.com", "colour": "blue"}"#),
            400,
            "non_field_errors",
        ),
        (
            "missing URL",
            json_req(r#"{"active": true}"#),
            400,
            "target_url",
        ),
        (
            "2 MiB body",
            json_req(&format!(
                r#"{{"target_url": "https://e.com", "x": "{}"}}"#,
                "a".repeat(2 << 20)
            )),
            413,
            "detail",
        ),
        (
            "bad PUT",
            api.http
                .put(url(&format!("/v1/webhooks/{id}")))
                .json(&json!({"target_url": "ftp://x", "event_type": "NOPE"})),
            400,
            "target_url",
        ),
    ];
    for (name, req, status, field) in cases {
        let a = api.send(req).await;
        assert_eq!(a.status, status, "{name}: {a:?}");
        assert!(
            a.body.get(field).is_some(),
            "{name}: body names {field}: {}",
            a.body
        );
    }
    assert_eq!(api.count_webhooks().await, 1, "nothing was created");
    assert_eq!(api.webhook(&id).await, before, "nothing was changed");

    let wrong_method = api.delete("/v1/webhooks").await;
    assert_eq!(wrong_method.status, 405);
    assert_eq!(
        wrong_method.body,
        json!({"detail": "Method \"DELETE\" not allowed."})
    );

    let bad = api
        .post_json(
            "/v1/webhooks",
            json!({"target_url": "ftp://example.com", "event_type": "COURSE_STARTED", "additional_headers": {"Host": "x"}}),
        )
        .await;
    snapshot_settings().bind(|| {
        insta::assert_json_snapshot!("dispatch__error_400", bad.body);
    });
}

#[tokio::test]
async fn s6b_samples_for_every_type_with_fresh_timestamps() {
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    for t in EventType::ALL {
        let a = api.get(&format!("/v1/webhooks/sample-{}", t.kebab())).await;
        assert_eq!(a.status, 200, "{t}");
        let results = a.body["results"].as_array().unwrap();
        assert_eq!(results.len(), 1);
        assert_eq!(results[0]["event_type"], t.as_str());
        let ts = results[0]["timestamp"].as_str().unwrap();
        assert!(is_timestamp(ts), "{ts} matches {TIMESTAMP_RE}");
        assert_ne!(
            ts,
            hookjar_core::fixtures::value(t)["timestamp"]
                .as_str()
                .unwrap(),
            "fresh"
        );
    }
    assert!(
        api.get("/v1/webhooks/sample-vilt-registration")
            .await
            .status
            == 200
    );
    assert_eq!(
        api.get("/v1/webhooks/sample-course-started").await.status,
        404
    );
}

// ---------------------------------------------------------------------------
// Delivery (S7–S13)
// ---------------------------------------------------------------------------

/// An independent receiver (wiremock) that answers 200 to every POST.
async fn wiremock_200() -> MockServer {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    receiver
}

async fn received(receiver: &MockServer, n: usize) -> Vec<wiremock::Request> {
    eventually(&format!("{n} requests"), || async {
        receiver.received_requests().await.unwrap().len() >= n
    })
    .await;
    receiver.received_requests().await.unwrap()
}

#[tokio::test]
async fn s7_one_post_of_one_json_object_with_skilljar_headers() {
    let receiver = wiremock_200().await;
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    api.create(json!({
        "target_url": format!("{}/hook", receiver.uri()),
        "basic_auth_username": "customer_username_input",
        "basic_auth_password": "customer_password_input",
        "additional_headers": {"x-my-new-header": "string", "client_id": "examplestring2"}
    }))
    .await;
    api.emit("COURSE_ENROLLMENT").await;
    let reqs = received(&receiver, 1).await;
    let r = &reqs[0];
    assert_eq!(r.method.as_str(), "POST");
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.headers["user-agent"], "skilljar");
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert!(body.is_object(), "a single object, not a list");

    let mut headers: Vec<String> = r
        .headers
        .iter()
        .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap()))
        .collect();
    headers.sort();
    snapshot_settings().bind(|| {
        insta::assert_snapshot!("dispatch__delivery_headers", headers.join("\n"));
    });
}

#[tokio::test]
async fn s8_basic_auth_from_either_half() {
    let receiver = wiremock_200().await;
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    let hook = format!("{}/hook", receiver.uri());
    let with_user = api
        .create(json!({"target_url": hook, "basic_auth_username": "only-user"}))
        .await;
    api.post_json(
        &format!("/v1/webhooks/{}/ping", with_user["id"].as_str().unwrap()),
        json!({}),
    )
    .await;
    let plain = api
        .create(json!({"target_url": format!("{hook}?plain")}))
        .await;
    api.post_json(
        &format!("/v1/webhooks/{}/ping", plain["id"].as_str().unwrap()),
        json!({}),
    )
    .await;
    let reqs = received(&receiver, 2).await;
    let auth = reqs[0].headers["authorization"].to_str().unwrap();
    assert_eq!(
        hookjar_core::request::decode_basic_auth(auth),
        Some(("only-user".into(), String::new())),
        "a missing half is empty"
    );
    assert!(
        reqs[1].headers.get("authorization").is_none(),
        "no auth when both are empty"
    );
}

#[tokio::test]
async fn s9_additional_headers_on_every_post_and_ping() {
    let receiver = wiremock_200().await;
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    let w = api
        .create(json!({
            "target_url": format!("{}/hook", receiver.uri()),
            "additional_headers": {"x-my-new-header": "string", "client_secret": "abcdefg1234567"}
        }))
        .await;
    api.emit("PATH_ENROLLMENT").await;
    api.post_json(
        &format!("/v1/webhooks/{}/ping", w["id"].as_str().unwrap()),
        json!({}),
    )
    .await;
    for r in received(&receiver, 2).await {
        assert_eq!(r.headers["x-my-new-header"], "string");
        assert_eq!(r.headers["client_secret"], "abcdefg1234567");
    }
}

#[tokio::test]
async fn s10_every_event_type_is_delivered() {
    let receiver = wiremock_200().await;
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    api.hook(&format!("{}/hook", receiver.uri())).await;
    for t in EventType::ALL {
        assert_eq!(api.emit(t.as_str()).await["deliveries"], 1, "{t}");
    }
    let mut types: Vec<String> = received(&receiver, 10)
        .await
        .iter()
        .map(|r| {
            serde_json::from_slice::<Value>(&r.body).unwrap()["event_type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    types.sort();
    let mut want: Vec<String> = EventType::ALL
        .iter()
        .map(|t| t.as_str().to_owned())
        .collect();
    want.sort();
    assert_eq!(types, want);
}

#[tokio::test]
async fn s11_payload_is_flat_with_a_microsecond_utc_timestamp_and_no_id() {
    let receiver = wiremock_200().await;
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    api.hook(&format!("{}/hook", receiver.uri())).await;
    let emitted = api.emit("COURSE_ENROLLMENT").await;
    let reqs = received(&receiver, 1).await;
    let body: Value = serde_json::from_slice(&reqs[0].body).unwrap();
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "event_type",
            "timestamp",
            "user",
            "course",
            "domain",
            "purchase",
            "domain_access_code"
        ]
    );
    assert!(
        is_timestamp(body["timestamp"].as_str().unwrap()),
        "{}",
        body["timestamp"]
    );
    let text = String::from_utf8(reqs[0].body.clone()).unwrap();
    assert!(
        !text.contains(emitted["event"].as_str().unwrap()),
        "no event id in the payload"
    );
}

#[tokio::test]
async fn s12_fan_out_to_matching_and_all_type_webhooks_only() {
    let receiver = wiremock_200().await;
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    let base = receiver.uri();
    api.create(json!({"target_url": format!("{base}/all")}))
        .await;
    api.create(json!({"target_url": format!("{base}/enrol"), "event_type": "COURSE_ENROLLMENT"}))
        .await;
    api.create(json!({"target_url": format!("{base}/lesson"), "event_type": "LESSON_COMPLETION"}))
        .await;
    api.create(json!({"target_url": format!("{base}/off"), "active": false}))
        .await;

    assert_eq!(api.emit("COURSE_ENROLLMENT").await["deliveries"], 2);
    assert_eq!(api.emit("QUIZ_COMPLETION").await["deliveries"], 1);
    let reqs = received(&receiver, 3).await;
    let mut paths: Vec<String> = reqs.iter().map(|r| r.url.path().to_owned()).collect();
    paths.sort();
    assert_eq!(paths, ["/all", "/all", "/enrol"]);
}

#[tokio::test(start_paused = true)]
async fn s12_two_webhooks_on_one_url_get_one_post_per_event() {
    let receiver = Receiver::start(&[Reply::Status(200)]).await;
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    let oldest = api
        .create(json!({"target_url": receiver.url, "additional_headers": {"x-which": "oldest"}}))
        .await;
    api.create(json!({"target_url": receiver.url, "event_type": "COURSE_ENROLLMENT", "additional_headers": {"x-which": "newer"}}))
        .await;
    assert_eq!(api.emit("COURSE_ENROLLMENT").await["deliveries"], 1);
    assert_eq!(api.emit("COURSE_COMPLETION").await["deliveries"], 1);
    receiver.wait_for(2, HOUR).await;
    tokio::time::sleep(HOUR).await;
    let got = receiver.requests();
    assert_eq!(got.len(), 2, "one POST per event");
    assert!(
        got.iter().all(|r| r.headers["x-which"] == "oldest"),
        "through the oldest webhook"
    );
    assert_eq!(
        api.deliveries(oldest["id"].as_str().unwrap()).await.len(),
        2
    );
}

#[tokio::test]
async fn s13_ping_reports_and_never_retries_or_deactivates() {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&receiver)
        .await;
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    let id = api.hook(&receiver.uri()).await;
    let ping = api
        .post_json(&format!("/v1/webhooks/{id}/ping"), json!({}))
        .await;
    assert_eq!(ping.status, 200);
    assert_eq!(ping.body["succeeded"], false);
    assert_eq!(ping.body["http_status_code"], 503);
    assert!(ping.body["message"].as_str().unwrap().contains("503"));
    let reqs = receiver.received_requests().await.unwrap();
    assert_eq!(reqs.len(), 1);
    let body: Value = serde_json::from_slice(&reqs[0].body).unwrap();
    assert_eq!(
        body.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["event_type", "timestamp"]
    );
    assert_eq!(body["event_type"], "PING");
    assert_eq!(reqs[0].headers["user-agent"], "skilljar");

    // A 4xx ping does not deactivate either.
    receiver.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&receiver)
        .await;
    let ping = api
        .post_json(&format!("/v1/webhooks/{id}/ping"), json!({}))
        .await;
    assert_eq!(ping.body["http_status_code"], 404);
    assert_eq!(api.webhook(&id).await["active"], true);
    assert!(
        api.deliveries(&id).await.is_empty(),
        "a ping is not a delivery"
    );

    // Skilljar answers an unknown id with a bare 404 (S13).
    let unknown = api
        .post_json("/v1/webhooks/nosuchhook/ping", json!({}))
        .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.body, Value::Null, "no body");
}

#[tokio::test]
async fn s13_ping_to_a_closed_port_has_no_status() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    let id = api.hook(&url).await;
    let ping = api
        .post_json(&format!("/v1/webhooks/{id}/ping"), json!({}))
        .await;
    assert_eq!(ping.body["succeeded"], false);
    assert_eq!(ping.body["http_status_code"], Value::Null);
    assert!(
        ping.body["message"]
            .as_str()
            .unwrap()
            .contains("connection refused"),
        "{}",
        ping.body
    );
}

// ---------------------------------------------------------------------------
// Retries and deactivation (S14–S19), in virtual time
// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn s14_503_three_times_then_200_is_delivered_after_4_posts() {
    let receiver = Receiver::start(&[
        Reply::Status(503),
        Reply::Status(503),
        Reply::Status(503),
        Reply::Status(200),
    ])
    .await;
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    let id = api.hook(&receiver.url).await;
    api.emit("COURSE_COMPLETION").await;
    let got = receiver.wait_for(4, HOUR).await;
    assert_eq!(
        gaps(&got),
        [2.0, 4.0, 8.0],
        "waits of 2, 4, 8 s after each failure"
    );
    tokio::time::sleep(HOUR).await;
    assert_eq!(receiver.count(), 4, "nothing after the 200");
    // X5: identical bytes on every retry.
    assert!(got.iter().all(|r| r.body == got[0].body));
    let log = api.deliveries(&id).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["state"], "delivered");
    let verdicts: Vec<&str> = log[0]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["verdict"].as_str().unwrap())
        .collect();
    assert_eq!(verdicts, ["retry", "retry", "retry", "delivered"]);
    assert_eq!(
        log[0]["digest"],
        hookjar_core::Digest::of(&got[0].body).to_string()
    );
    assert_eq!(api.webhook(&id).await["active"], true);
}

#[tokio::test(start_paused = true)]
async fn s15_503_forever_is_61_posts_then_retry_count() {
    let receiver = Receiver::start(&[Reply::Status(503)]).await;
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    let id = api.hook(&receiver.url).await;
    api.emit("COURSE_ENROLLMENT").await;
    let got = receiver.wait_for(61, 60 * HOUR).await;

    let mut want: Vec<f64> = (0..11).map(|i| f64::from(2u32 << i)).collect(); // 2 … 2048
    want.extend(std::iter::repeat_n(3600.0, 49));
    assert_eq!(gaps(&got), want);
    let total: f64 = want.iter().sum();
    assert_eq!(total, RetryPolicy::default().total().as_secs_f64());

    tokio::time::sleep(10 * HOUR).await;
    assert_eq!(receiver.count(), 61, "nothing more is POSTed");
    let w = api.webhook(&id).await;
    assert_eq!(w["active"], false);
    assert_eq!(w["deactivate_reason"], "RETRY_COUNT");
    let log = api.deliveries(&id).await;
    assert_eq!(log[0]["state"], "failed");
    let attempts = log[0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 61);
    assert_eq!(
        attempts[60]["detail"],
        "HTTP 503 on retry 60; deactivated (RETRY_COUNT)"
    );
}

#[tokio::test(start_paused = true)]
async fn s15_retry_count_drops_the_webhooks_other_pending_deliveries() {
    let receiver = Receiver::start(&[Reply::Status(503)]).await;
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    let id = api.hook(&receiver.url).await;
    api.emit("COURSE_ENROLLMENT").await;
    receiver.wait_for(1, HOUR).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    api.emit("COURSE_COMPLETION").await; // one second behind the first
    receiver.wait_for(61 + 60, 60 * HOUR).await;
    tokio::time::sleep(10 * HOUR).await;
    assert_eq!(
        receiver.count(),
        121,
        "the second delivery's last retry was never sent"
    );
    let log = api.deliveries(&id).await;
    assert_eq!(log[0]["state"], "failed");
    assert_eq!(log[1]["state"], "dropped");
    assert_eq!(log[1]["attempts"].as_array().unwrap().len(), 60);
}

#[tokio::test(start_paused = true)]
async fn s16_a_404_deactivates_after_one_post() {
    let receiver = Receiver::start(&[Reply::Status(404)]).await;
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    let id = api.hook(&receiver.url).await;
    api.emit("COURSE_ENROLLMENT").await;
    api.emit("COURSE_COMPLETION").await;
    receiver.wait_for(1, HOUR).await;
    tokio::time::sleep(10 * HOUR).await;
    // Both events were due at once, so both may have been sent before the first 404
    // was recorded; nothing is retried after it.
    let n = receiver.count();
    assert!((1..=2).contains(&n), "{n} POSTs");
    let w = api.webhook(&id).await;
    assert_eq!(w["active"], false);
    assert_eq!(w["deactivate_reason"], "HTTP_4XX_RESPONSE");
    api.emit("COURSE_ENROLLMENT").await;
    tokio::time::sleep(HOUR).await;
    assert_eq!(receiver.count(), n, "nothing more after deactivation");
}

#[tokio::test(start_paused = true)]
async fn s17_any_2xx_is_delivered_and_its_body_ignored() {
    let receiver = Receiver::start(&[Reply::Status(204)]).await;
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    let id = api.hook(&receiver.url).await;
    api.emit("QUIZ_COMPLETION").await;
    receiver.wait_for(1, HOUR).await;
    tokio::time::sleep(HOUR).await;
    assert_eq!(receiver.count(), 1);
    assert_eq!(api.deliveries(&id).await[0]["state"], "delivered");
}

#[tokio::test(start_paused = true)]
async fn s18_redirect_loop_ends_in_too_many_redirects() {
    let receiver = Receiver::start(&[Reply::RedirectLoop]).await;
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    let id = api.hook(&receiver.url).await;
    api.emit("COURSE_ENROLLMENT").await;
    receiver.wait_for(11, HOUR).await;
    tokio::time::sleep(10 * HOUR).await;
    assert_eq!(
        receiver.count(),
        11,
        "the POST and 10 followed redirects, never retried"
    );
    let w = api.webhook(&id).await;
    assert_eq!(w["active"], false);
    assert_eq!(w["deactivate_reason"], "TOO_MANY_REDIRECTS");
}

#[tokio::test(start_paused = true)]
async fn s18_up_to_ten_redirects_are_followed() {
    let receiver = Receiver::start(&[Reply::RedirectThen(10)]).await;
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    let id = api.hook(&receiver.url).await;
    api.emit("COURSE_ENROLLMENT").await;
    receiver.wait_for(11, HOUR).await;
    settle().await;
    assert_eq!(api.deliveries(&id).await[0]["state"], "delivered");
    assert_eq!(api.webhook(&id).await["active"], true);
}

#[tokio::test(start_paused = true)]
async fn s18_connection_refused_and_timeouts_are_retried_like_5xx() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let refused_url = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    let slow = Receiver::start(&[Reply::Hang(Duration::from_secs(60)), Reply::Status(200)]).await;
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    let refused = api.hook(&refused_url).await;
    let timed_out = api.hook(&slow.url).await;
    api.emit("COURSE_ENROLLMENT").await;
    slow.wait_for(2, HOUR).await;
    settle().await;

    let log = api.deliveries(&refused).await;
    let first = &log[0]["attempts"][0];
    assert_eq!(first["error"], "connect: connection refused");
    assert_eq!(first["verdict"], "retry");
    assert_eq!(
        first["detail"],
        "connect: connection refused on first attempt; retry 1 in 2s"
    );
    assert_eq!(api.webhook(&refused).await["active"], true);

    let log = api.deliveries(&timed_out).await;
    let attempts = log[0]["attempts"].as_array().unwrap();
    assert!(
        attempts[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("timeout"),
        "{}",
        attempts[0]
    );
    assert_eq!(attempts[0]["verdict"], "retry");
    let got = slow.requests();
    // The timeout (10 s) ends the first attempt; the retry follows 2 s later.
    assert_eq!(gaps(&got), [12.0]);
    assert_eq!(log[0]["state"], "delivered");
}

#[tokio::test(start_paused = true)]
async fn s19_a_crash_while_a_retry_waits_loses_nothing() {
    let dir = tempdir();
    let db = dir.join("hookjar.db");
    let receiver = Receiver::start(&[Reply::Status(503), Reply::Status(200)]).await;
    let store = hookjar_dispatch::StoreConfig::File(db.clone());

    let first = dispatcher(|c| c.store = store.clone()).await;
    let api = Api::new(&first);
    let id = api.hook(&receiver.url).await;
    api.emit("COURSE_ENROLLMENT").await;
    receiver.wait_for(1, HOUR).await;
    settle().await; // the 503 is recorded; the retry waits 2 s
    drop(first); // a crash: no shutdown

    let second = dispatcher(|c| c.store = store.clone()).await;
    let api = Api::new(&second);
    let got = receiver.wait_for(2, HOUR).await;
    assert_eq!(got[0].body, got[1].body, "the same bytes after the restart");
    settle().await;
    let log = api.deliveries(&id).await;
    assert_eq!(log[0]["state"], "delivered");
    assert_eq!(log[0]["attempts"].as_array().unwrap().len(), 2);
    second.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(start_paused = true)]
async fn s19_an_accepted_event_survives_a_crash_right_after_emit() {
    let dir = tempdir();
    let store = hookjar_dispatch::StoreConfig::File(dir.join("hookjar.db"));
    let receiver = Receiver::start(&[Reply::Status(200)]).await;
    let first = dispatcher(|c| c.store = store.clone()).await;
    let api = Api::new(&first);
    api.hook(&receiver.url).await;
    let emitted = api.emit("PURCHASE_FULFILLMENT").await;
    assert_eq!(emitted["deliveries"], 1);
    drop(first); // before the engine had a chance to send
    assert_eq!(
        receiver.count(),
        0,
        "the first instance must not have sent it, or this tests nothing"
    );

    let second = dispatcher(|c| c.store = store.clone()).await;
    let got = receiver.wait_for(1, HOUR).await;
    assert_eq!(got[0].json()["event_type"], "PURCHASE_FULFILLMENT");
    second.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

// ---------------------------------------------------------------------------
// Toolkit extensions (X1–X4)
// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn x1_emit_answers_202_with_the_event_and_its_delivery_count() {
    let receiver = Receiver::start(&[Reply::Status(200)]).await;
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    assert_eq!(
        api.emit("COURSE_ENROLLMENT").await["deliveries"],
        0,
        "no webhook yet"
    );
    api.hook(&receiver.url).await;
    let a = api
        .post_json(
            "/v1/events",
            json!({"event_type": "COURSE_ENROLLMENT", "user": {"email": "ada@example.com"}, "extra": 1}),
        )
        .await;
    assert_eq!(a.status, 202);
    assert_eq!(a.body["deliveries"], 1);
    assert!(hookjar_core::webhook::is_valid_id(
        a.body["event"].as_str().unwrap()
    ));
    let got = receiver.wait_for(1, HOUR).await;
    let body = got[0].json();
    assert_eq!(
        body["user"],
        json!({"email": "ada@example.com"}),
        "top-level keys replace"
    );
    assert_eq!(body["extra"], 1);
    assert!(body["course"].is_object(), "the fixture's other keys stay");
    assert!(is_timestamp(body["timestamp"].as_str().unwrap()));

    let bad = api
        .post_json("/v1/events", json!({"event_type": "COURSE_STARTED"}))
        .await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.body["event_type"][0]
            .as_str()
            .unwrap()
            .contains("DOMAIN_ENROLLMENT")
    );
    let missing = api.post_json("/v1/events", json!({})).await;
    assert_eq!(
        missing.body,
        json!({"event_type": ["This field is required."]})
    );
}

/// X1: an emit never alters what it was given. serde_json reads an integer beyond
/// 64 bits as the nearest float, so such a body is refused with a way out rather
/// than delivered changed; integers within 64 bits arrive as sent.
#[tokio::test(start_paused = true)]
async fn x1_an_integer_beyond_64_bits_is_refused_not_altered() {
    let receiver = Receiver::start(&[Reply::Status(200)]).await;
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    api.hook(&receiver.url).await;
    let wide =
        r#"{"event_type": "COURSE_ENROLLMENT", "user": {"id": 123456789012345678901234567890}}"#;
    let a = api
        .send(
            api.http
                .post(api.url("/v1/events"))
                .header("content-type", "application/json")
                .body(wide),
        )
        .await;
    assert_eq!(a.status, 400, "{a:?}");
    let message = a.body["non_field_errors"][0].as_str().unwrap_or_default();
    assert!(
        message.contains("123456789012345678901234567890") && message.contains("string"),
        "names the number and the way out: {a:?}"
    );
    let edge = r#"{"event_type": "COURSE_ENROLLMENT", "n": 18446744073709551615, "m": -9223372036854775808, "f": 1e30}"#;
    let a = api
        .send(
            api.http
                .post(api.url("/v1/events"))
                .header("content-type", "application/json")
                .body(edge),
        )
        .await;
    assert_eq!(a.status, 202, "{a:?}");
    let got = receiver.wait_for(1, HOUR).await;
    let text = String::from_utf8_lossy(&got[0].body).into_owned();
    assert!(
        text.contains("\"n\":18446744073709551615") && text.contains("\"m\":-9223372036854775808"),
        "{text}"
    );
}

/// A page of another origin cannot change the API through a browser that has the
/// key cached (a form post carries the cached Basic login); programs send no
/// Origin, and the console's own origin is the API's.
#[tokio::test(start_paused = true)]
async fn a_changing_request_from_another_origin_is_refused() {
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    let form = |origin: Option<&str>| {
        let mut req = api
            .http
            .post(api.url("/v1/webhooks"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("target_url=http://127.0.0.1:9/stolen");
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        req
    };
    for evil in ["http://evil.example", "http://127.0.0.1:1", "null"] {
        let a = api.send(form(Some(evil))).await;
        assert_eq!(a.status, 403, "{evil}: {a:?}");
        assert!(
            a.body["detail"]
                .as_str()
                .unwrap()
                .contains("another origin"),
            "{a:?}"
        );
    }
    assert_eq!(api.count_webhooks().await, 0, "nothing was created");
    let own = api.url("").trim_end_matches('/').to_owned();
    assert_eq!(
        api.send(form(Some(&own))).await.status,
        201,
        "the console's own origin"
    );
    assert_eq!(api.send(form(None)).await.status, 201, "a program");
    // Reading is left to the browser's same-origin policy (no CORS headers).
    let read = api
        .send(
            api.http
                .get(api.url("/v1/webhooks"))
                .header("origin", "http://evil.example"),
        )
        .await;
    assert_eq!(read.status, 200);
    assert!(read.headers.get("access-control-allow-origin").is_none());
}

#[tokio::test(start_paused = true)]
async fn x2_delivery_log_and_redeliver_the_same_bytes() {
    let receiver = Receiver::start(&[Reply::Status(500), Reply::Status(200)]).await;
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    let id = api.hook(&receiver.url).await;
    let emitted = api.emit("DASHBOARD_TASK_CREATED").await;
    receiver.wait_for(2, HOUR).await;
    settle().await;
    let log = api.deliveries(&id).await;
    assert_eq!(log.len(), 1);
    let d = &log[0];
    assert_eq!(d["event"], emitted["event"]);
    assert_eq!(d["event_type"], "DASHBOARD_TASK_CREATED");
    assert_eq!(d["state"], "delivered");
    let attempts = d["attempts"].as_array().unwrap();
    assert_eq!(attempts[0]["status"], 500);
    assert_eq!(attempts[0]["verdict"], "retry");
    assert_eq!(
        attempts[0]["detail"],
        "HTTP 500 on first attempt; retry 1 in 2s"
    );
    assert!(is_timestamp(
        attempts[0]["next_attempt_at"].as_str().unwrap()
    ));
    assert!(attempts[0]["latency_ms"].is_number());
    assert_eq!(attempts[1]["verdict"], "delivered");
    assert_eq!(attempts[1]["next_attempt_at"], Value::Null);

    let again = api
        .post_json(
            &format!("/v1/deliveries/{}/redeliver", d["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(again.status, 202, "{again:?}");
    let got = receiver.wait_for(3, HOUR).await;
    assert_eq!(got[2].body, got[0].body, "the same bytes again");
    settle().await;
    assert_eq!(api.deliveries(&id).await.len(), 2);
    assert_eq!(
        api.post_json("/v1/deliveries/nope/redeliver", json!({}))
            .await
            .status,
        404
    );
    assert_eq!(api.get("/v1/webhooks/nope/deliveries").await.status, 404);
}

#[tokio::test(start_paused = true)]
async fn x3_time_scale_divides_real_back_off() {
    let receiver =
        Receiver::start(&[Reply::Status(503), Reply::Status(503), Reply::Status(200)]).await;
    let server = dispatcher(|c| c.time_scale = 1000.0).await;
    let api = Api::new(&server);
    let id = api.hook(&receiver.url).await;
    api.emit("COURSE_ENROLLMENT").await;
    let got = receiver.wait_for(3, HOUR).await;
    // 2 s and 4 s of back-off take 2 ms and 4 ms of (tokio) time at scale 1000.
    assert_eq!(gaps(&got), [0.002, 0.004]);
    settle().await;
    let log = api.deliveries(&id).await;
    let a = &log[0]["attempts"][0];
    let at = time::OffsetDateTime::parse(
        a["at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let next = time::OffsetDateTime::parse(
        a["next_attempt_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let stored_gap = (next - at).as_seconds_f64();
    assert!(
        (2.0..2.1).contains(&stored_gap),
        "dispatcher time still counts 2 s: {stored_gap}"
    );
}

#[tokio::test]
async fn x4_openapi_is_generated_from_the_handlers() {
    // The full contract is checked in tests/openapi.rs; here: served, in Skilljar's
    // paths and names.
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    let doc = api.get("/openapi.json").await.body;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/v1/ping",
        "/v1/webhooks",
        "/v1/webhooks/{webhook_id}",
        "/v1/webhooks/{webhook_id}/ping",
        "/v1/webhooks/{webhook_id}/deliveries",
        "/v1/deliveries/{delivery_id}/redeliver",
        "/v1/events",
        "/v1/webhooks/sample-course-enrollment",
    ] {
        assert!(paths.contains_key(p), "{p} is documented");
    }
    assert!(paths["/v1/webhooks/{webhook_id}"].get("patch").is_some());
    assert_eq!(
        doc["components"]["securitySchemes"]["OrganizationApiKey"]["scheme"],
        "basic"
    );
    assert!(doc["components"]["schemas"]["WebHook"].is_object());
}

#[tokio::test(start_paused = true)]
async fn org_disabled_admin_deactivation_drops_pending() {
    // A receiver that fails, so the delivery is pending a retry when the admin acts.
    let receiver = Receiver::start(&[Reply::Status(503)]).await;
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    let id = api.hook(&receiver.url).await;
    api.emit("COURSE_ENROLLMENT").await;
    receiver.wait_for(1, HOUR).await;
    settle().await;
    assert_eq!(api.deliveries(&id).await[0]["state"], "pending");
    let a = api
        .post_json(&format!("/v1/webhooks/{id}/deactivate"), json!({}))
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["active"], false);
    assert_eq!(a.body["deactivate_reason"], "ORG_DISABLED");
    // The pending retry is dropped: nothing more is sent, ever.
    tokio::time::sleep(10 * HOUR).await;
    assert_eq!(receiver.count(), 1);
    assert_eq!(api.deliveries(&id).await[0]["state"], "dropped");
}

/// A fresh folder under the system temp dir.
fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("hookjar-dispatch-{}", rand_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rand_suffix() -> String {
    hookjar_core::webhook::webhook_id(rand_u64())
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish()
}

#[tokio::test(start_paused = true)]
async fn engine_a_slow_webhook_does_not_block_the_others() {
    let slow = Receiver::start(&[Reply::Hang(Duration::from_secs(60))]).await;
    let fast = Receiver::start(&[Reply::Status(200)]).await;
    let server = dispatcher(|c| {
        c.concurrency = 2;
        c.per_webhook_concurrency = 1;
    })
    .await;
    let api = Api::new(&server);
    api.hook(&slow.url).await;
    api.hook(&fast.url).await;
    for _ in 0..3 {
        assert_eq!(api.emit("COURSE_ENROLLMENT").await["deliveries"], 2);
    }
    // All three reach the fast endpoint while the slow one still holds its first
    // attempt (which times out after 10 s).
    fast.wait_for(3, Duration::from_secs(5)).await;
    assert_eq!(slow.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn api_response_shapes_snapshot() {
    let receiver = Receiver::start(&[Reply::Status(503), Reply::Status(200)]).await;
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    let id = api.hook(&receiver.url).await;
    let emit = api.emit("LESSON_COMPLETION").await;
    receiver.wait_for(2, HOUR).await;
    settle().await;
    let unauthenticated =
        Api::answer(api.http.get(api.url("/v1/webhooks")).send().await.unwrap()).await;
    let too_large = api
        .send(
            api.http
                .post(api.url("/v1/webhooks"))
                .header("Content-Type", "application/json")
                .body(vec![b' '; (1 << 20) + 1]),
        )
        .await;
    let shapes = json!({
        "emit 202": emit,
        "ping 200": api.post_json(&format!("/v1/webhooks/{id}/ping"), json!({})).await.body,
        "deliveries 200": api.get(&format!("/v1/webhooks/{id}/deliveries")).await.body,
        "sample 200": api.get("/v1/webhooks/sample-lesson-completion").await.body,
        "401": unauthenticated.body,
        "404": api.get("/v1/webhooks/zzz").await.body,
        "405": api.send(api.http.patch(api.url("/v1/webhooks"))).await.body,
        "413": too_large.body,
        "415": api.send(api.http.post(api.url("/v1/webhooks")).header("Content-Type", "text/plain").body("x")).await.body,
    });
    snapshot_settings().bind(|| {
        insta::assert_json_snapshot!("dispatch__api_shapes", shapes, {
            ".*.event" => "[id]",
            ".*.results[].id" => "[id]",
            ".*.results[].event" => "[id]",
            ".*.results[].digest" => "[digest]",
            ".*.results[].attempts[].latency_ms" => "[ms]",
        });
    });
}

#[tokio::test(start_paused = true)]
async fn s18_other_statuses_are_retried_like_5xx() {
    let receiver = Receiver::start(&[Reply::Status(304), Reply::Status(200)]).await;
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    let id = api.hook(&receiver.url).await;
    api.emit("COURSE_ENROLLMENT").await;
    let got = receiver.wait_for(2, HOUR).await;
    assert_eq!(gaps(&got), [2.0]);
    settle().await;
    let log = api.deliveries(&id).await;
    assert_eq!(
        log[0]["attempts"][0]["detail"],
        "HTTP 304 on first attempt; retry 1 in 2s"
    );
    assert_eq!(log[0]["state"], "delivered");
}

#[tokio::test(start_paused = true)]
async fn s19_graceful_shutdown_finishes_the_attempt_in_flight() {
    let dir = tempdir();
    let store = hookjar_dispatch::StoreConfig::File(dir.join("hookjar.db"));
    let receiver =
        Receiver::start(&[Reply::Hang(Duration::from_secs(5)), Reply::Status(200)]).await;
    let first = dispatcher(|c| c.store = store.clone()).await;
    let api = Api::new(&first);
    let id = api.hook(&receiver.url).await;
    api.emit("COURSE_ENROLLMENT").await;
    receiver.wait_for(1, HOUR).await; // the receiver is holding the answer
    first.shutdown().await; // waits for the answer and records it

    let second = dispatcher(|c| c.store = store.clone()).await;
    let api = Api::new(&second);
    let log = api.deliveries(&id).await;
    assert_eq!(log[0]["state"], "delivered", "{log:?}");
    tokio::time::sleep(HOUR).await;
    assert_eq!(receiver.count(), 1, "not sent again");
    second.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(start_paused = true)]
async fn s4_deactivating_by_update_drops_waiting_retries() {
    let receiver = Receiver::start(&[Reply::Status(503)]).await;
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    let id = api.hook(&receiver.url).await;
    api.emit("COURSE_ENROLLMENT").await;
    receiver.wait_for(1, HOUR).await;
    settle().await; // the retry waits 2 s
    let off = api
        .patch_json(&format!("/v1/webhooks/{id}"), json!({"active": false}))
        .await;
    assert_eq!(
        off.body["deactivate_reason"],
        Value::Null,
        "a user's deactivation has no reason"
    );
    api.patch_json(&format!("/v1/webhooks/{id}"), json!({"active": true}))
        .await;
    tokio::time::sleep(10 * HOUR).await;
    assert_eq!(
        receiver.count(),
        1,
        "the waiting retry was dropped, not resurrected"
    );
    assert_eq!(api.deliveries(&id).await[0]["state"], "dropped");
}

/// S4 + S16: deleting a webhook while its POST is in flight must not lose the other
/// webhooks' results recorded in the same batch (here: a 410 that deactivates).
#[tokio::test(start_paused = true)]
async fn s4_delete_during_a_post_keeps_other_webhooks_verdicts() {
    // All three answer at the same instant, so their results are recorded together.
    let slow = Receiver::start(&[Reply::Late(Duration::from_secs(1), 200)]).await;
    let gone = Receiver::start(&[Reply::Late(Duration::from_secs(1), 200)]).await;
    let blocked = Receiver::start(&[Reply::Late(Duration::from_secs(1), 410)]).await;
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    let slow_id = api.hook(&slow.url).await;
    let gone_id = api.hook(&gone.url).await;
    let blocked_id = api.hook(&blocked.url).await;
    api.emit("QUIZ_COMPLETION").await;
    // Both slow POSTs are in flight; delete their webhooks under them.
    slow.wait_for(1, HOUR).await;
    gone.wait_for(1, HOUR).await;
    blocked.wait_for(1, HOUR).await;
    assert_eq!(
        api.delete(&format!("/v1/webhooks/{slow_id}")).await.status,
        204
    );
    assert_eq!(
        api.delete(&format!("/v1/webhooks/{gone_id}")).await.status,
        204
    );
    tokio::time::sleep(Duration::from_secs(30)).await;
    let w = api.webhook(&blocked_id).await;
    assert_eq!(w["active"], false, "{w}");
    assert_eq!(w["deactivate_reason"], "HTTP_4XX_RESPONSE");
    let d = api.deliveries(&blocked_id).await;
    assert_eq!(d[0]["state"], "failed", "{d:?}");
    assert_eq!(d[0]["attempts"].as_array().unwrap().len(), 1);
    // Nothing more is sent to the deactivated webhook.
    api.emit("QUIZ_COMPLETION").await;
    tokio::time::sleep(HOUR).await;
    assert_eq!(blocked.count(), 1);
}

// ---------------------------------------------------------------------------
// Issue #8: a dispatcher you can trust in the corners
// ---------------------------------------------------------------------------

/// 2026-01-01T00:00:00Z: the wall clock of the restart tests.
const WALL0: i64 = 1_767_225_600_000_000;

/// A wall clock reading `wall` now, at X3 scale `scale` (a fresh process's clock).
fn wall_clock(wall: i64, scale: f64) -> hookjar_dispatch::Clock {
    hookjar_dispatch::Clock::anchored(wall, tokio::time::Instant::now(), scale)
}

/// The S14 wait before retry `n` (n ≥ 1), in seconds.
fn backoff(n: u32) -> f64 {
    RetryPolicy::default()
        .delay_before_retry(n)
        .expect("a retry")
        .as_secs_f64()
}

#[tokio::test(start_paused = true)]
async fn x3_a_restart_keeps_pending_retries_in_place() {
    let dir = tempdir();
    let store = hookjar_dispatch::StoreConfig::File(dir.join("hookjar.db"));
    let receiver = Receiver::start(&[Reply::Status(503)]).await;
    let start = tokio::time::Instant::now();
    let first = dispatcher(|c| {
        c.store = store.clone();
        c.clock = Some(wall_clock(WALL0, 3600.0));
    })
    .await;
    let api = Api::new(&first);
    api.hook(&receiver.url).await;
    api.emit("COURSE_ENROLLMENT").await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    drop(first); // kill -9 after 6 s: the retries are at the 1 h cap by now
    let before = receiver.count();
    let last = receiver.requests()[before - 1].at;

    // A new process: its clock reads the wall clock now, 6 s later.
    let elapsed = (tokio::time::Instant::now() - start).as_micros() as i64;
    let second = dispatcher(|c| {
        c.store = store.clone();
        c.clock = Some(wall_clock(WALL0 + elapsed, 3600.0));
    })
    .await;
    let got = receiver.wait_for(before + 1, HOUR).await;
    let gap = (got[before].at - last).as_secs_f64();
    // The cap is 3600 s of back-off: one second at this scale.
    assert!(
        gap <= 1.0 + 0.001,
        "the next POST came {gap} s after the last one; at most the 1 s cap"
    );
    second.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(start_paused = true)]
async fn x3_a_restart_with_another_scale_keeps_the_retry_instant() {
    let dir = tempdir();
    let store = hookjar_dispatch::StoreConfig::File(dir.join("hookjar.db"));
    let receiver = Receiver::start(&[Reply::Status(503)]).await;
    let start = tokio::time::Instant::now();
    let first = dispatcher(|c| {
        c.store = store.clone();
        c.clock = Some(wall_clock(WALL0, 3600.0));
    })
    .await;
    let api = Api::new(&first);
    let id = api.hook(&receiver.url).await;
    api.emit("COURSE_ENROLLMENT").await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    drop(first);
    let before = receiver.count();

    let restart = tokio::time::Instant::now();
    let elapsed = (restart - start).as_micros() as i64;
    let second = dispatcher(|c| {
        c.store = store.clone();
        c.clock = Some(wall_clock(WALL0 + elapsed, 1.0));
    })
    .await;
    let api = Api::new(&second);
    let log = api.deliveries(&id).await;
    let next = log[0]["next_attempt_at"].as_str().unwrap().to_owned();
    let next =
        time::OffsetDateTime::parse(&next, &time::format_description::well_known::Rfc3339).unwrap();
    let wall_next = log[0]["next_attempt_wall_at"].as_str().unwrap().to_owned();
    let wall_next =
        time::OffsetDateTime::parse(&wall_next, &time::format_description::well_known::Rfc3339)
            .unwrap();
    let restart_wall = hookjar_dispatch::clock::to_datetime(WALL0 + elapsed);
    let ahead = (wall_next - restart_wall).as_seconds_f64();
    assert!(
        (0.0..=3600.0).contains(&ahead),
        "the pending retry is due {ahead} s of wall time after the restart (dispatcher time {next}); at most the 1 h cap"
    );
    let got = receiver.wait_for(before + 1, 2 * HOUR).await;
    let waited = (got[before].at - restart).as_secs_f64();
    assert!(
        (waited - ahead).abs() <= 0.001,
        "the POST came {waited} s after the restart, when the log said {ahead} s"
    );
    second.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(start_paused = true)]
async fn x3_the_delivery_log_shows_dispatcher_and_wall_time() {
    let receiver = Receiver::start(&[Reply::Status(503), Reply::Status(200)]).await;
    let server = dispatcher(|c| c.clock = Some(wall_clock(WALL0, 3600.0))).await;
    let api = Api::new(&server);
    let id = api.hook(&receiver.url).await;
    tokio::time::sleep(Duration::from_secs(10)).await; // ten hours of dispatcher time
    api.emit("COURSE_ENROLLMENT").await;
    receiver.wait_for(2, HOUR).await;
    settle().await;
    let log = api.deliveries(&id).await;
    let a = &log[0]["attempts"][0];
    let parse = |v: &Value| {
        time::OffsetDateTime::parse(
            v.as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    let wall = parse(&a["wall_at"]);
    let at = parse(&a["at"]);
    let w0 = hookjar_dispatch::clock::to_datetime(WALL0);
    assert_eq!((wall - w0).whole_seconds(), 10, "wall time: 10 s later");
    assert_eq!((at - w0).whole_hours(), 10, "dispatcher time: 10 h later");
}

#[tokio::test]
async fn x3_absurd_time_scales_are_refused() {
    for scale in [1e12, f64::NAN, f64::INFINITY, 0.0, -1.0] {
        let config = hookjar_dispatch::Config {
            api_key: KEY.into(),
            time_scale: scale,
            ..hookjar_dispatch::Config::default()
        };
        let e = hookjar_dispatch::Dispatcher::start(config, "127.0.0.1:0")
            .await
            .expect_err("refused");
        assert!(e.to_string().contains("time scale"), "{scale}: {e}");
    }
}

#[tokio::test(start_paused = true)]
async fn s16_a_stale_404_does_not_switch_a_reactivated_webhook_off() {
    let receiver = Receiver::start(&[
        Reply::Late(Duration::from_millis(500), 404),
        Reply::Late(Duration::from_secs(3), 404),
        Reply::Status(200),
    ])
    .await;
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    let id = api.hook(&receiver.url).await;
    api.emit("COURSE_ENROLLMENT").await;
    api.emit("COURSE_ENROLLMENT").await;
    receiver.wait_for(2, HOUR).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let w = api.webhook(&id).await;
    assert_eq!(w["active"], false, "the first 404 deactivates: {w}");
    let fixed = format!("{}/fixed", receiver.url);
    let a = api
        .put_json(
            &format!("/v1/webhooks/{id}"),
            json!({"active": true, "target_url": fixed}),
        )
        .await;
    assert_eq!(a.status, 200);
    tokio::time::sleep(Duration::from_secs(3)).await; // the old URL's late 404 lands
    let w = api.webhook(&id).await;
    assert_eq!(w["active"], true, "a stale 404 is not applied: {w}");
    assert_eq!(api.emit("COURSE_ENROLLMENT").await["deliveries"], 1);
    let got = receiver.wait_for(3, HOUR).await;
    assert_eq!(got[2].path, "/hook/fixed");
    settle().await;
    let log = api.deliveries(&id).await;
    let stale: Vec<&Value> = log
        .iter()
        .flat_map(|d| d["attempts"].as_array().unwrap())
        .filter(|a| a["stale"] == true)
        .collect();
    assert_eq!(
        stale.len(),
        1,
        "the late 404 is logged, marked stale: {log:#?}"
    );
    assert_eq!(stale[0]["status"], 404);
}

/// Deactivating a webhook drops what it had waiting, the attempt in flight included:
/// a late 5xx to that attempt is logged but not retried, so re-activating the
/// webhook does not bring the old event back (dispatcher.md: re-activation receives
/// the events emitted from then on).
#[tokio::test(start_paused = true)]
async fn s16_an_attempt_in_flight_at_a_deactivation_is_not_retried_after_reactivation() {
    let receiver =
        Receiver::start(&[Reply::Late(Duration::from_secs(3), 503), Reply::Status(200)]).await;
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    let id = api.hook(&receiver.url).await;
    api.emit("COURSE_ENROLLMENT").await;
    receiver.wait_for(1, HOUR).await; // the POST is in; its 503 comes in 3 s
    for active in [false, true] {
        let a = api
            .patch_json(&format!("/v1/webhooks/{id}"), json!({"active": active}))
            .await;
        assert_eq!(a.status, 200, "{a:?}");
    }
    // The late 503 lands; a retry would have been due 2 s after it.
    tokio::time::sleep(Duration::from_secs(60)).await;
    settle().await;
    assert_eq!(
        receiver.count(),
        1,
        "the event from before the deactivation is not sent again: {:#?}",
        receiver.requests()
    );
    let log = api.deliveries(&id).await;
    assert_eq!(log.len(), 1, "{log:#?}");
    assert_eq!(log[0]["state"], "dropped", "{log:#?}");
    assert_eq!(
        log[0]["attempts"][0]["status"], 503,
        "the late answer is logged: {log:#?}"
    );
    // What is emitted from now on is delivered.
    assert_eq!(api.emit("COURSE_ENROLLMENT").await["deliveries"], 1);
    receiver.wait_for(2, HOUR).await;
}

#[tokio::test(start_paused = true)]
async fn s19_a_crash_during_a_post_counts_the_attempt() {
    let dir = tempdir();
    let store = hookjar_dispatch::StoreConfig::File(dir.join("hookjar.db"));
    let receiver = Receiver::start(&[Reply::Hang(Duration::from_secs(60))]).await;
    let first = dispatcher(|c| c.store = store.clone()).await;
    let api = Api::new(&first);
    let id = api.hook(&receiver.url).await;
    api.emit("COURSE_ENROLLMENT").await;
    receiver.wait_for(1, HOUR).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let log = api.deliveries(&id).await;
    assert_eq!(
        log[0]["attempts"][0]["verdict"], "started",
        "the attempt is written before its POST leaves: {log:#?}"
    );
    drop(first); // kill -9 while the POST waits for its answer
    receiver.set_script(&[Reply::Status(200)]);

    let restart = tokio::time::Instant::now();
    let second = dispatcher(|c| c.store = store.clone()).await;
    let api = Api::new(&second);
    let got = receiver.wait_for(2, HOUR).await;
    let waited = (got[1].at - restart).as_secs_f64();
    assert!(
        waited >= backoff(1),
        "the retry came {waited} s after the restart, before its 2 s back-off"
    );
    settle().await;
    let log = api.deliveries(&id).await;
    let attempts = log[0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{log:#?}");
    assert_eq!(attempts[0]["verdict"], "unknown");
    assert_eq!(attempts[1]["attempt"], 1);
    assert_eq!(log[0]["state"], "delivered");
    second.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(start_paused = true)]
async fn s15_crashes_during_posts_never_make_more_than_61() {
    let dir = tempdir();
    let store = hookjar_dispatch::StoreConfig::File(dir.join("hookjar.db"));
    let receiver = Receiver::start(&[Reply::Late(Duration::from_secs(1), 503)]).await;
    let mut server = dispatcher(|c| c.store = store.clone()).await;
    let api = Api::new(&server);
    let id = api.hook(&receiver.url).await;
    api.emit("COURSE_ENROLLMENT").await;
    // Crash during every POST, 70 times over.
    for _ in 0..70 {
        let n = receiver.count();
        if !receiver.arrived(n + 1, 2 * HOUR).await {
            break;
        }
        drop(server);
        server = dispatcher(|c| c.store = store.clone()).await;
    }
    let got = receiver.requests();
    assert_eq!(got.len(), 61, "61 POSTs at most, crashes or not");
    for (i, gap) in gaps(&got).iter().enumerate() {
        let want = backoff(i as u32 + 1);
        assert!(
            *gap >= want,
            "retry {} came {gap} s after the last POST, before its {want} s back-off",
            i + 1
        );
    }
    let api = Api::new(&server);
    let w = api.webhook(&id).await;
    assert_eq!(w["deactivate_reason"], "RETRY_COUNT", "{w}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(start_paused = true)]
async fn s19_a_second_dispatcher_on_one_store_is_refused() {
    let dir = tempdir();
    let db = dir.join("hookjar.db");
    let store = hookjar_dispatch::StoreConfig::File(db.clone());
    let first = dispatcher(|c| c.store = store.clone()).await;
    let config = hookjar_dispatch::Config {
        api_key: KEY.into(),
        store: store.clone(),
        ..hookjar_dispatch::Config::default()
    };
    let e = hookjar_dispatch::Dispatcher::start(config.clone(), "127.0.0.1:0")
        .await
        .expect_err("a second owner is refused");
    let msg = e.to_string();
    assert!(msg.contains(&db.display().to_string()), "{msg}");
    assert!(
        msg.contains(&format!("pid {}", std::process::id())),
        "{msg}"
    );
    drop(first); // a crash releases the store at once
    let third = hookjar_dispatch::Dispatcher::start(config, "127.0.0.1:0")
        .await
        .expect("a stale owner does not block a restart");
    third.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// A small tmpfs for disk-full tests, or `None` (with one "skipped" line) when this
/// process cannot mount one (not root, or no mount permission).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempdir();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: cannot mount a tmpfs (needs root) for the disk-full test");
            let _ = std::fs::remove_dir_all(&dir);
            return None;
        }
        Some(Tmpfs(dir))
    }

    /// Fills the file system; returns the filler's path.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write as _;
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn s19_a_full_disk_answers_503_naming_the_cause() {
    let Some(fs) = Tmpfs::mount("2m") else {
        return;
    };
    let server =
        dispatcher(|c| c.store = hookjar_dispatch::StoreConfig::File(fs.0.join("h.db"))).await;
    let api = Api::new(&server);
    api.hook("http://127.0.0.1:9/hook").await;
    let filler = fs.fill();
    let big = "x".repeat(600 * 1024);
    let a = api
        .post_json(
            "/v1/events",
            json!({"event_type": "COURSE_ENROLLMENT", "note": big}),
        )
        .await;
    assert_eq!(a.status, 503, "{a:?}");
    assert!(a.headers.contains_key("retry-after"), "{a:?}");
    let detail = a.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("the store's disk is full"), "{detail}");
    std::fs::remove_file(filler).unwrap();
    let a = api
        .post_json(
            "/v1/events",
            json!({"event_type": "COURSE_ENROLLMENT", "note": big}),
        )
        .await;
    assert_eq!(a.status, 202, "space is back: {a:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn s6_target_urls_follow_djangos_url_validator() {
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    for bad in [
        "http:127.0.0.1:18011/nohost",
        "http:///127.0.0.1:1/x",
        "http://127.0.0.1:1/sp ace",
        "http://127.0.0.1:1/a\u{0}b",
        "http://127.0.0.1:1/a\tb",
        "http://-bad-.com/",
        "http://bad-.com/",
        "http://nodot/",
        "http://256.1.1.1/",
        "http://[::1/x",
        "http://[zz::1]/x",
        "http://127.0.0.1:99999/x",
        "http://127.0.0.1:1/a\\b",
        "ftp://example.com/x",
    ] {
        let a = api
            .post_json("/v1/webhooks", json!({ "target_url": bad }))
            .await;
        assert_eq!(a.status, 400, "{bad:?}: {a:?}");
        assert_eq!(a.body["target_url"][0], "Enter a valid URL.", "{bad:?}");
    }
    for good in [
        "http://localhost/x",
        "http://127.0.0.1:8080/x?y=1",
        "https://example.com",
        "HTTPS://Example.COM/Path",
        "http://[::1]:8080/x",
        "http://sub.example-site.co.uk/a/./b",
        "http://user:pw@example.com/x",
        "http://example.com/caf%C3%A9?q=a%20b#frag",
    ] {
        let a = api
            .post_json("/v1/webhooks", json!({ "target_url": good }))
            .await;
        assert_eq!(a.status, 201, "{good:?}: {a:?}");
        assert_eq!(a.body["target_url"], good, "stored byte for byte");
    }
}

#[tokio::test(start_paused = true)]
async fn s12_fan_out_compares_normalised_urls() {
    let receiver = Receiver::start(&[Reply::Status(200)]).await;
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    let port = receiver
        .url
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    for url in [
        format!("http://localhost:{port}/dup"),
        format!("HTTP://LOCALHOST:{port}/dup"),
        format!("http://localhost:{port}/./dup"),
        format!("http://localhost:{port}/x/../dup"),
    ] {
        api.hook(&url).await;
    }
    assert_eq!(api.emit("COURSE_ENROLLMENT").await["deliveries"], 1);
    receiver.wait_for(1, HOUR).await;
    tokio::time::sleep(HOUR).await;
    assert_eq!(receiver.count(), 1);
}

#[tokio::test]
async fn s6_an_api_key_with_a_colon_is_refused_at_start() {
    let config = hookjar_dispatch::Config {
        api_key: "user:pass".into(),
        ..hookjar_dispatch::Config::default()
    };
    let e = hookjar_dispatch::Dispatcher::start(config, "127.0.0.1:0")
        .await
        .expect_err("refused");
    assert!(e.to_string().contains("':'"), "{e}");
}

#[tokio::test(start_paused = true)]
async fn x1_a_valid_timestamp_override_is_kept_and_a_bad_one_refused() {
    let receiver = Receiver::start(&[Reply::Status(200)]).await;
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    api.hook(&receiver.url).await;
    let a = api
        .post_json(
            "/v1/events",
            json!({"event_type": "COURSE_ENROLLMENT", "timestamp": "2015-02-13T18:57:55.066475+00:00"}),
        )
        .await;
    assert_eq!(a.status, 202, "{a:?}");
    let got = receiver.wait_for(1, HOUR).await;
    assert_eq!(
        got[0].json()["timestamp"],
        "2015-02-13T18:57:55.066475+00:00"
    );
    for bad in [json!("yesterday"), json!(5), json!("2015-02-30T00:00:00Z")] {
        let a = api
            .post_json(
                "/v1/events",
                json!({"event_type": "COURSE_ENROLLMENT", "timestamp": bad}),
            )
            .await;
        assert_eq!(a.status, 400, "{bad}: {a:?}");
        assert!(a.body["timestamp"][0].is_string(), "{a:?}");
    }
}

#[tokio::test]
async fn s6_header_values_and_counts_are_capped_and_hop_by_hop_names_refused() {
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    let create = |headers: Value| {
        let api = api.clone();
        async move {
            api.post_json(
                "/v1/webhooks",
                json!({"target_url": "http://127.0.0.1:9/h", "additional_headers": headers}),
            )
            .await
        }
    };
    let big = "v".repeat(8 * 1024 + 1);
    assert_eq!(create(json!({ "x-big": big })).await.status, 400);
    assert_eq!(
        create(json!({ "x-ok": "v".repeat(8 * 1024) })).await.status,
        201
    );
    for name in [
        "Upgrade",
        "TE",
        "Keep-Alive",
        "Expect",
        "Proxy-Authorization",
        "proxy-connection",
    ] {
        let a = create(json!({ name: "x" })).await;
        assert_eq!(a.status, 400, "{name}: {a:?}");
    }
    // One more than the cap of 50 (S6, settled).
    let many: serde_json::Map<String, Value> =
        (0..=50).map(|i| (format!("x-h{i}"), json!("v"))).collect();
    assert_eq!(create(Value::Object(many)).await.status, 400);
}

#[tokio::test]
async fn s4_patch_of_an_unknown_id_with_a_bad_body_is_404() {
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    let a = api
        .send(
            api.http
                .patch(api.url("/v1/webhooks/nope"))
                .header("content-type", "application/json")
                .body("{not json"),
        )
        .await;
    assert_eq!(a.status, 404, "{a:?}");
    let a = api
        .patch_json("/v1/webhooks/nope", json!({"active": "maybe"}))
        .await;
    assert_eq!(a.status, 404, "{a:?}");
}

#[tokio::test(start_paused = true)]
async fn s18_a_302_that_turns_the_post_into_a_get_is_logged() {
    let receiver = Receiver::start(&[Reply::Moved(302)]).await;
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    let id = api.hook(&receiver.url).await;
    api.emit("COURSE_ENROLLMENT").await;
    let got = receiver.wait_for(2, HOUR).await;
    assert_eq!(
        (got[0].method.as_str(), got[1].method.as_str()),
        ("POST", "GET")
    );
    assert!(got[1].body.is_empty(), "the GET has no body");
    settle().await;
    let log = api.deliveries(&id).await;
    let detail = log[0]["attempts"][0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("302") && detail.contains("GET"),
        "the log says the POST became a GET: {detail}"
    );
    let ping = api
        .post_json(&format!("/v1/webhooks/{id}/ping"), json!({}))
        .await;
    let message = ping.body["message"].as_str().unwrap();
    assert!(
        message.contains("302") && message.contains("GET"),
        "{message}"
    );
}

#[tokio::test(start_paused = true)]
async fn s19_deliveries_left_inflight_by_failed_writes_resume_on_their_own() {
    let receiver =
        Receiver::start(&[Reply::Late(Duration::from_secs(1), 503), Reply::Status(200)]).await;
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    let id = api.hook(&receiver.url).await;
    api.emit("COURSE_ENROLLMENT").await;
    receiver.wait_for(1, HOUR).await;
    // The store refuses writes while the 503 comes back, and for a minute after.
    server.store().refuse_writes(true).await.unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        receiver.count(),
        1,
        "nothing is sent while the store refuses writes"
    );
    server.store().refuse_writes(false).await.unwrap();
    // Once writes succeed, the 503 is recorded and the retry follows its back-off.
    let got = receiver.wait_for(2, HOUR).await;
    let gap = (got[1].at - got[0].at).as_secs_f64();
    assert!(
        gap >= 1.0 + backoff(1),
        "the retry came {gap} s after the first POST"
    );
    settle().await;
    let log = api.deliveries(&id).await;
    assert_eq!(log[0]["state"], "delivered", "{log:#?}");
    let attempts = log[0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["status"], 503);
    tokio::time::sleep(HOUR).await;
    assert_eq!(receiver.count(), 2, "no POST repeated");
}

/// `serve --loopback-only` (and every test here): a webhook on another host is never
/// contacted; its attempt fails as a connect error (retried like any, S18) and says why.
#[tokio::test(start_paused = true)]
async fn loopback_only_never_contacts_another_host() {
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    let id = api.hook("https://example.com/never").await;
    api.emit("COURSE_ENROLLMENT").await;
    eventually("the first attempt is logged", || {
        let api = api.clone();
        let id = id.clone();
        async move {
            let log = api.deliveries(&id).await;
            log.first()
                .and_then(|d| d["attempts"].as_array())
                .is_some_and(|a| a.iter().any(|a| a["verdict"] == "retry"))
        }
    })
    .await;
    let log = api.deliveries(&id).await;
    let first = &log[0]["attempts"][0];
    assert_eq!(first["status"], Value::Null, "{first}");
    assert!(
        first["detail"]
            .as_str()
            .unwrap()
            .contains("example.com is not a loopback address"),
        "{first}"
    );
    server.shutdown().await;
}

/// A client that sends a request's head and part of its body, then goes silent, gets a
/// 408 once it has been silent for the header timeout (10 s, virtual time) and the
/// connection is closed: it cannot hold one of the API's connections for as long as
/// it likes. A body sent in pieces, each within the timeout, is read whole.
#[tokio::test(start_paused = true)]
async fn a_client_silent_mid_body_gets_408_at_the_header_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = dispatcher(|_| {}).await;
    let addr = server.url().trim_start_matches("http://").to_owned();
    // Basic auth of `test-key:` (KEY).
    assert_eq!(KEY, "test-key");
    let auth = "authorization: Basic dGVzdC1rZXk6\r\n";
    let body = br#"{"event_type": "COURSE_ENROLLMENT"}"#;
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nhost: x\r\n{auth}content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );

    let started = tokio::time::Instant::now();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body[..10]).await.unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the connection must be closed, not held open");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("no part of the body for 10 s"), "{text}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(10) && waited < Duration::from_secs(12),
        "{waited:?}"
    );

    // Pieces 6 s apart: never 10 s of silence, 12 s in all.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    for piece in body.chunks(12) {
        s.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_secs(6)).await;
    }
    let mut got = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(30), s.read(&mut got))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&got[..n]);
    assert!(text.starts_with("HTTP/1.1 202"), "{text}");
    server.shutdown().await;
}

/// Abusive but authenticated input gets a bounded, JSON answer: a page number that
/// happens to be `u64::MAX` is not "last"; thousands of unknown fields are not each
/// worded back; an id that is not UTF-8 gets the API's JSON `detail`.
#[tokio::test]
async fn abusive_input_gets_bounded_json_answers() {
    let server = dispatcher(|_| {}).await;
    let api = Api::new(&server);
    api.hook("https://example.com/a").await;

    let page = api.get("/v1/webhooks?page=18446744073709551615").await;
    assert_eq!(page.status, 404, "{:?}", page.body);
    assert_eq!(page.body, json!({"detail": "Invalid page."}));
    let last = api.get("/v1/webhooks?page=last").await;
    assert_eq!(last.status, 200);

    let mut body = serde_json::Map::new();
    body.insert("target_url".into(), json!("https://example.com/b"));
    for i in 0..5000 {
        body.insert(format!("unknown_{i}"), json!(1));
    }
    let refused = api.post_json("/v1/webhooks", Value::Object(body)).await;
    assert_eq!(refused.status, 400);
    let text = refused.body.to_string();
    assert!(text.len() < 4096, "{} bytes of errors", text.len());
    assert!(text.contains("unknown_0"), "{text}");
    assert!(text.contains("4995 more"), "{text}");
    assert_eq!(api.count_webhooks().await, 1, "nothing was created");

    for path in ["/v1/deliveries/%ff/redeliver", "/v1/webhooks/%ff"] {
        let answer = if path.ends_with("redeliver") {
            api.send(api.http.post(api.url(path))).await
        } else {
            api.get(path).await
        };
        assert!(
            answer.status == 400 || answer.status == 404,
            "{path}: {}",
            answer.status
        );
        assert_eq!(
            answer.headers[reqwest::header::CONTENT_TYPE],
            "application/json",
            "{path}"
        );
        assert!(
            answer.body["detail"].is_string(),
            "{path}: {:?}",
            answer.body
        );
    }
}
