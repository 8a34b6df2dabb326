//! The mock receiver end to end, over real loopback sockets with reqwest as the
//! client. No test sleeps for a fixed time: delays are measured on tokio's paused
//! clock, everything else waits with `wait_for_requests`.

use std::time::Duration;

use hookjar_core::{Event, EventType};
use hookjar_mock::{FixedClock, MockReceiver, Per, RecordedRequest};
use serde_json::Value;
use std::sync::Arc;
use time::macros::datetime;

const WAIT: Duration = Duration::from_secs(10);

/// A distinct, valid payload: `n` seconds into 2026.
fn payload(t: EventType, n: u64) -> Vec<u8> {
    let at = datetime!(2026-01-01 0:00 UTC) + Duration::from_secs(n);
    Event::fixture(t, at).to_payload().bytes().to_vec()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// POSTs `body` the way Skilljar does (S7).
async fn post(
    client: &reqwest::Client,
    url: &str,
    body: &[u8],
) -> reqwest::Result<reqwest::Response> {
    client
        .post(url)
        .header("content-type", "application/json")
        .header("user-agent", "skilljar")
        .body(body.to_vec())
        .send()
        .await
}

async fn status(client: &reqwest::Client, url: &str, body: &[u8]) -> u16 {
    post(client, url, body)
        .await
        .expect("an HTTP answer")
        .status()
        .as_u16()
}

/// A receiver with one default script, advancing `per` delivery or request.
async fn scripted(script: &str, per: Per) -> MockReceiver {
    MockReceiver::builder()
        .script(script)
        .unwrap()
        .per(per)
        .start()
        .await
        .unwrap()
}

/// Prints the journal when an assertion about it fails.
fn dump(requests: &[RecordedRequest]) -> String {
    requests
        .iter()
        .map(|r| format!("\n  {}", r.summary()))
        .collect()
}

#[tokio::test]
async fn per_request_script_answers_503_503_200_200() {
    let mock = scripted("503*2,200", Per::Request).await;
    let c = client();
    let url = format!("{}/hook", mock.url());
    let mut got = Vec::new();
    for n in 0..4 {
        // Different events: per request, they still share one position.
        got.push(status(&c, &url, &payload(EventType::CourseEnrollment, n)).await);
    }
    assert_eq!(got, [503, 503, 200, 200]);
    let reqs = mock.wait_for_requests(4, WAIT).await.unwrap();
    let steps: Vec<&str> = reqs.iter().map(|r| r.step.as_str()).collect();
    assert_eq!(steps, ["503", "503", "200", "200"], "{}", dump(&reqs));
    assert!(reqs.iter().all(|r| r.attempt == 0), "{}", dump(&reqs));
}

#[tokio::test]
async fn per_delivery_each_event_gets_503_503_200() {
    let mock = scripted("503*2,200", Per::Delivery).await;
    let c = client();
    let url = mock.url();
    let (a, b) = (
        payload(EventType::CourseCompletion, 1),
        payload(EventType::CourseCompletion, 2),
    );
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(status(&c, &url, &a).await);
        got.push(status(&c, &url, &b).await);
    }
    assert_eq!(got, [503, 503, 503, 503, 200, 200]);
    let reqs = mock.requests();
    let attempts: Vec<u32> = reqs.iter().map(|r| r.attempt).collect();
    assert_eq!(attempts, [0, 0, 1, 1, 2, 2], "{}", dump(&reqs));
    let deliveries = mock.deliveries();
    assert_eq!(deliveries.len(), 2);
    for d in &deliveries {
        let steps: Vec<&str> = d.attempts.iter().map(|a| a.step.as_str()).collect();
        assert_eq!(steps, ["503", "503", "200"]);
        assert_eq!(d.gaps.len(), 2);
        assert_eq!(d.event_type.as_deref(), Some("COURSE_COMPLETION"));
    }
    assert_ne!(deliveries[0].digest, deliveries[1].digest);
}

#[tokio::test]
async fn per_path_scripts_override_the_default() {
    let mock = MockReceiver::builder()
        .route("/a", "503*3,200")
        .unwrap()
        .route("/gone", "410")
        .unwrap()
        .start()
        .await
        .unwrap();
    let c = client();
    let body = payload(EventType::PathEnrollment, 0);
    let mut got = Vec::new();
    for path in ["/a", "/b", "/a?x=1", "/gone", "/a", "/a", "/b"] {
        got.push(status(&c, &format!("{}{path}", mock.url()), &body).await);
    }
    // /a's script advances only on /a (the same delivery), /b uses the default 200.
    assert_eq!(got, [503, 200, 503, 410, 503, 200, 200]);
    let reqs = mock.requests();
    assert_eq!(reqs[0].script, "route /a");
    assert_eq!(reqs[1].script, "default");
    assert_eq!(reqs[2].path, "/a?x=1");
    // One body, three paths: three deliveries (the query does not count), each with
    // its own attempt numbers.
    assert_eq!(
        reqs.iter().map(|r| r.attempt).collect::<Vec<_>>(),
        [0, 0, 1, 0, 2, 3, 1]
    );
    assert_eq!(mock.deliveries().len(), 3);
}

#[tokio::test]
async fn per_type_scripts_fail_one_kind_of_event() {
    let mock = MockReceiver::builder()
        .for_type(EventType::CourseCompletion, "410")
        .unwrap()
        .start()
        .await
        .unwrap();
    let c = client();
    let url = mock.url();
    assert_eq!(
        status(&c, &url, &payload(EventType::CourseCompletion, 0)).await,
        410
    );
    assert_eq!(
        status(&c, &url, &payload(EventType::CourseEnrollment, 0)).await,
        200
    );
    assert_eq!(
        status(&c, &url, &payload(EventType::CourseCompletion, 1)).await,
        410
    );
    let reqs = mock.requests();
    let scripts: Vec<&str> = reqs.iter().map(|r| r.script.as_str()).collect();
    assert_eq!(
        scripts,
        [
            "for_type COURSE_COMPLETION",
            "default",
            "for_type COURSE_COMPLETION"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn delays_are_exact_on_a_paused_clock() {
    let mock = scripted("200@1500ms,503@2s,200", Per::Request).await;
    let c = client();
    let url = mock.url();
    let body = payload(EventType::QuizCompletion, 0);
    let mut waits = Vec::new();
    for _ in 0..3 {
        let t0 = tokio::time::Instant::now();
        let code = status(&c, &url, &body).await;
        waits.push((code, t0.elapsed()));
    }
    assert_eq!(
        waits,
        [
            (200, Duration::from_millis(1500)),
            (503, Duration::from_secs(2)),
            (200, Duration::ZERO)
        ]
    );
    let steps: Vec<String> = mock.requests().into_iter().map(|r| r.step).collect();
    assert_eq!(steps, ["200@1500ms", "503@2s", "200"]);
}

#[tokio::test(start_paused = true)]
async fn delivery_gaps_follow_the_monotonic_clock() {
    let mock = scripted("503*2,200", Per::Delivery).await;
    let c = client();
    let body = payload(EventType::CourseEnrollment, 0);
    assert_eq!(status(&c, &mock.url(), &body).await, 503);
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(status(&c, &mock.url(), &body).await, 503);
    tokio::time::advance(Duration::from_secs(4)).await;
    assert_eq!(status(&c, &mock.url(), &body).await, 200);
    let d = mock.deliveries();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].gaps, [Duration::from_secs(2), Duration::from_secs(4)]);
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json[0]["gaps_ms"], serde_json::json!([2000.0, 4000.0]));
}

/// True when the error chain holds an I/O error of `kind`.
fn has_io_kind(err: &(dyn std::error::Error + 'static), kind: std::io::ErrorKind) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == kind)
        {
            return true;
        }
        cur = e.source();
    }
    false
}

#[tokio::test]
async fn reset_is_a_connection_error_and_the_server_keeps_serving() {
    let mock = scripted("reset,200", Per::Request).await;
    let c = client();
    let body = payload(EventType::CourseEnrollment, 0);
    let err = post(&c, &mock.url(), &body)
        .await
        .expect_err("a reset is not an answer");
    assert!(!err.is_timeout(), "{err:?}");
    assert!(
        has_io_kind(&err, std::io::ErrorKind::ConnectionReset),
        "expected a TCP reset, got {err:?}"
    );
    assert_eq!(status(&c, &mock.url(), &body).await, 200);
    let reqs = mock.requests();
    assert_eq!(reqs[0].step, "reset");
    assert_eq!(reqs[0].status, None);
    assert_eq!(reqs[1].status, Some(200));
}

#[tokio::test]
async fn hang_times_out_while_other_requests_are_served() {
    let mock = MockReceiver::builder()
        .route("/hang", "hang")
        .unwrap()
        .start()
        .await
        .unwrap();
    let body = payload(EventType::CourseEnrollment, 0);
    let hang_url = format!("{}/hang", mock.url());
    let hang_body = body.clone();
    let hanging = tokio::spawn(async move {
        let c = reqwest::Client::builder()
            .timeout(Duration::from_millis(800))
            .build()
            .unwrap();
        post(&c, &hang_url, &hang_body).await
    });
    mock.wait_for_requests(1, WAIT).await.unwrap();
    // The hang holds its own connection only: another request is answered at once.
    let c = client();
    assert_eq!(status(&c, &format!("{}/ok", mock.url()), &body).await, 200);
    assert!(
        !hanging.is_finished(),
        "the hung request must still be waiting"
    );
    let err = hanging.await.unwrap().expect_err("a hang never answers");
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(status(&c, &format!("{}/ok", mock.url()), &body).await, 200);
    let steps: Vec<String> = mock.requests().into_iter().map(|r| r.step).collect();
    assert_eq!(steps, ["hang", "200", "200"]);
}

#[tokio::test]
async fn garbage_is_not_http() {
    let mock = scripted("garbage,200", Per::Request).await;
    let c = client();
    let body = payload(EventType::CourseEnrollment, 0);
    let err = post(&c, &mock.url(), &body)
        .await
        .expect_err("garbage is not an answer");
    assert!(!err.is_timeout(), "{err:?}");
    let text = format!("{err:?}");
    assert!(
        !text.contains("ConnectionReset"),
        "garbage must be sent, not a reset: {text}"
    );
    assert_eq!(status(&c, &mock.url(), &body).await, 200);
}

#[tokio::test]
async fn garbage_bytes_reach_the_socket() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mock = scripted("garbage", Per::Delivery).await;
    let mut s = tokio::net::TcpStream::connect(mock.address())
        .await
        .unwrap();
    s.write_all(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}")
        .await
        .unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, hookjar_mock::server::GARBAGE);
}

#[tokio::test]
async fn redirect_loops_or_points_elsewhere() {
    let mock = MockReceiver::builder()
        .route("/loop", "redirect")
        .unwrap()
        .route("/moved", "redirect=/new")
        .unwrap()
        .start()
        .await
        .unwrap();
    let body = payload(EventType::CourseEnrollment, 0);
    let res = post(&client(), &format!("{}/loop?q=1", mock.url()), &body)
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 307);
    assert_eq!(res.headers()["location"], "/loop?q=1");

    // A following client gives up after its redirect limit (S18's TOO_MANY_REDIRECTS).
    let following = reqwest::Client::new();
    let err = post(&following, &format!("{}/loop", mock.url()), &body)
        .await
        .unwrap_err();
    assert!(err.is_redirect(), "{err:?}");

    let res = post(&following, &format!("{}/moved", mock.url()), &body)
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.url().path(), "/new");
    let last_two: Vec<String> = mock
        .requests()
        .iter()
        .rev()
        .take(2)
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(last_two, ["/new", "/moved"]);
}

#[tokio::test]
async fn a_retry_after_step_sends_its_header_and_a_relative_location_resolves() {
    let mock = MockReceiver::builder()
        .route("/busy", "503+retry-after=3600,429+retry-after=1")
        .unwrap()
        .route("/dir/start", "redirect=./next")
        .unwrap()
        .start()
        .await
        .unwrap();
    let body = payload(EventType::CourseEnrollment, 0);
    let res = post(&client(), &format!("{}/busy", mock.url()), &body)
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 503);
    assert_eq!(res.headers()["retry-after"], "3600");
    let note: Value = res.json().await.unwrap();
    assert_eq!(note["step"], "503+retry-after=3600");
    let res = post(&client(), &format!("{}/busy", mock.url()), &body)
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 429);
    assert_eq!(res.headers()["retry-after"], "1");
    assert_eq!(mock.requests()[1].step, "429+retry-after=1");
    // `Location: ./next` from /dir/start is /dir/next (RFC 3986).
    let res = post(&client(), &format!("{}/dir/start", mock.url()), &body)
        .await
        .unwrap();
    assert_eq!(res.headers()["location"], "./next");
    let res = post(
        &reqwest::Client::new(),
        &format!("{}/dir/start", mock.url()),
        &body,
    )
    .await
    .unwrap();
    assert_eq!(res.url().path(), "/dir/next");
}

#[tokio::test]
async fn a_redirect_status_step_sends_its_code_and_location() {
    let mock = MockReceiver::builder()
        .route("/see-other", "303=/landed")
        .unwrap()
        .route("/permanent", "308=/landed")
        .unwrap()
        .start()
        .await
        .unwrap();
    let body = payload(EventType::CourseEnrollment, 0);
    let res = post(&client(), &format!("{}/see-other", mock.url()), &body)
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 303);
    assert_eq!(res.headers()["location"], "/landed");
    // A following client turns a 303's POST into a GET without the body, and keeps the
    // POST for a 308.
    let following = reqwest::Client::new();
    post(&following, &format!("{}/see-other", mock.url()), &body)
        .await
        .unwrap();
    post(&following, &format!("{}/permanent", mock.url()), &body)
        .await
        .unwrap();
    let seen: Vec<(String, String, usize)> = mock
        .requests()
        .iter()
        .skip(1)
        .map(|r| (r.method.clone(), r.path.clone(), r.body.len()))
        .collect();
    assert_eq!(
        seen,
        [
            ("POST".to_owned(), "/see-other".to_owned(), body.len()),
            ("GET".to_owned(), "/landed".to_owned(), 0),
            ("POST".to_owned(), "/permanent".to_owned(), body.len()),
            ("POST".to_owned(), "/landed".to_owned(), body.len()),
        ]
    );
    assert_eq!(mock.requests()[0].step, "303=/landed");
}

#[tokio::test]
async fn missing_basic_auth_gets_401() {
    let mock = MockReceiver::builder()
        .basic_auth("u", "p")
        .require_header("x-client-id", "abc")
        .start()
        .await
        .unwrap();
    let c = client();
    let body = payload(EventType::CourseEnrollment, 0);
    let res = post(&c, &mock.url(), &body).await.unwrap();
    assert_eq!(res.status().as_u16(), 401);
    assert_eq!(
        res.headers()["www-authenticate"],
        "Basic realm=\"hookjar-mock\""
    );
    let detail: Value = res.json().await.unwrap();
    assert!(
        detail["detail"]
            .as_str()
            .unwrap()
            .contains("missing Authorization"),
        "{detail}"
    );

    let ok = c
        .post(mock.url())
        .basic_auth("u", Some("p"))
        .header("x-client-id", "abc")
        .header("content-type", "application/json")
        .header("user-agent", "skilljar")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);

    let wrong = c
        .post(mock.url())
        .basic_auth("u", Some("nope"))
        .header("x-client-id", "abc")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);

    let reqs = mock.requests();
    assert_eq!(
        reqs[0].violations,
        [
            "auth: missing Authorization (S8 expects Basic credentials)",
            "S9 header x-client-id: missing (expected \"abc\")"
        ]
    );
    assert_eq!(
        (reqs[0].script.as_str(), reqs[0].step.as_str()),
        ("auth", "401")
    );
    assert!(reqs[1].violations.is_empty(), "{:?}", reqs[1].violations);
    assert!(
        reqs[2]
            .violations
            .contains(&"auth: wrong password for user \"u\"".to_owned()),
        "{:?}",
        reqs[2].violations
    );
}

#[tokio::test]
async fn wrong_user_agent_is_a_recorded_violation() {
    let mock = MockReceiver::builder().start().await.unwrap();
    let res = client()
        .post(format!("{}/h", mock.url()))
        .header("content-type", "application/json")
        .header("user-agent", "curl/8")
        .body(payload(EventType::CourseEnrollment, 0))
        .send()
        .await
        .unwrap();
    // Violations are recorded, not refused: the script still answers.
    assert_eq!(res.status().as_u16(), 200);
    let reqs = mock.wait_for_requests(1, WAIT).await.unwrap();
    assert_eq!(
        reqs[0].violations,
        ["S7 user-agent: expected \"skilljar\", got \"curl/8\""]
    );
    assert_eq!(reqs[0].event_type.as_deref(), Some("COURSE_ENROLLMENT"));
}

#[tokio::test]
async fn journal_file_gets_one_line_per_request() {
    let dir = std::env::temp_dir().join(format!("hookjar-mock-journal-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("journal.jsonl");
    let _ = std::fs::remove_file(&path);
    let mock = MockReceiver::builder()
        .script("503,200")
        .unwrap()
        .journal_file(&path)
        .start()
        .await
        .unwrap();
    let c = client();
    let body = payload(EventType::LessonCompletion, 0);
    assert_eq!(status(&c, &format!("{}/x", mock.url()), &body).await, 503);
    // The line is written before the answer, so it is there now.
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert_eq!(status(&c, &format!("{}/x", mock.url()), &body).await, 200);
    mock.shutdown().await;

    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0]["seq"], 1);
    assert_eq!(lines[0]["status"], 503);
    assert_eq!(lines[1]["attempt"], 1);
    assert_eq!(lines[1]["step"], "200");
    assert_eq!(lines[1]["event_type"], "LESSON_COMPLETION");
    assert_eq!(lines[1]["body"], String::from_utf8(body.clone()).unwrap());
    assert_eq!(lines[1]["json"]["event_type"], "LESSON_COMPLETION");
    assert_eq!(lines[1]["digest"], lines[0]["digest"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn journal_json_snapshot_of_one_request() {
    let clock = Arc::new(FixedClock(datetime!(2026-11-27 09:30:00.123456 UTC)));
    let mock = MockReceiver::builder()
        .script("503")
        .unwrap()
        .clock(clock)
        .start()
        .await
        .unwrap();
    let body = Event::ping(datetime!(2026-11-27 09:29:59.5 UTC)).to_payload();
    let res = client()
        .post(format!("{}/hooks/skilljar?src=test", mock.url()))
        .header("content-type", "application/json")
        .header("user-agent", "curl/8")
        .header("x-client-id", "abc")
        .body(body.bytes().to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 503);
    let listed: Value = client()
        .get(format!("{}/_mock/requests", mock.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let one = listed[0].clone();
    insta::with_settings!({
        snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/../../snapshots"),
        prepend_module_to_snapshot => false,
    }, {
        insta::assert_json_snapshot!("mock__journal_one_request", one, {
            ".since_start_ms" => "[ms]",
            ".headers[4][1]" => "127.0.0.1:[port]",
        });
    });
    assert_eq!(
        listed[0]["headers"][4][0], "host",
        "the redaction above hides the host's port"
    );
}

#[tokio::test]
async fn admin_endpoints_filter_clear_and_swap_scripts() {
    let mock = MockReceiver::builder().start().await.unwrap();
    let c = client();
    let (a, b) = (
        payload(EventType::CourseEnrollment, 0),
        payload(EventType::PathCompletion, 0),
    );
    post(&c, &format!("{}/a", mock.url()), &a).await.unwrap();
    post(&c, &format!("{}/b", mock.url()), &b).await.unwrap();
    post(&c, &format!("{}/b?again", mock.url()), &b)
        .await
        .unwrap();

    let get = |q: &str| {
        let url = format!("{}/_mock/{q}", mock.url());
        let c = c.clone();
        async move {
            let res = c.get(url).send().await.unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        }
    };
    let (code, all) = get("requests").await;
    assert_eq!((code, all.as_array().unwrap().len()), (200, 3));
    assert_eq!(get("requests?path=/b").await.1.as_array().unwrap().len(), 2);
    assert_eq!(
        get("requests?event_type=COURSE_ENROLLMENT")
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let digest = all[1]["digest"].as_str().unwrap().to_owned();
    assert_eq!(
        get(&format!("requests?digest={digest}"))
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let (code, err) = get("requests?colour=red").await;
    assert_eq!(code, 400);
    assert!(err["detail"].as_str().unwrap().contains("?path="), "{err}");

    let (_, deliveries) = get("deliveries").await;
    assert_eq!(deliveries.as_array().unwrap().len(), 2);
    assert_eq!(deliveries[1]["attempts"].as_array().unwrap().len(), 2);
    assert_eq!(deliveries[1]["gaps_ms"].as_array().unwrap().len(), 1);

    // Swap scripts live: JSON, then plain text.
    let res = c
        .put(format!("{}/_mock/script", mock.url()))
        .body(r#"{"script": "503", "routes": {"/r": "reset"}, "for_type": {"PATH_COMPLETION": "410"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let now: Value = res.json().await.unwrap();
    assert_eq!(
        now,
        serde_json::json!({"script": "503", "routes": {"/r": "reset"}, "for_type": {"PATH_COMPLETION": "410"}, "per": "delivery"})
    );
    assert_eq!(status(&c, &mock.url(), &a).await, 503);
    assert_eq!(status(&c, &mock.url(), &b).await, 410);
    let res = c
        .put(format!("{}/_mock/script", mock.url()))
        .body("204")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(status(&c, &mock.url(), &a).await, 204);
    assert_eq!(
        mock.scripts().routes.len(),
        1,
        "plain text replaces only the default script"
    );

    let res = c
        .put(format!("{}/_mock/script", mock.url()))
        .body("503*x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    let err: Value = res.json().await.unwrap();
    assert!(
        err["detail"].as_str().unwrap().contains("at column 5"),
        "{err}"
    );

    let res = c
        .delete(format!("{}/_mock/requests", mock.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        serde_json::json!({"cleared": 6})
    );
    assert!(mock.requests().is_empty());
    assert_eq!(get("nope").await.0, 404);
    assert_eq!(
        c.post(format!("{}/_mock/requests", mock.url()))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        405
    );
    assert!(mock.requests().is_empty(), "admin calls are not journaled");
}

#[tokio::test]
async fn wait_for_requests_reports_what_arrived() {
    let mock = MockReceiver::builder().start().await.unwrap();
    post(
        &client(),
        &format!("{}/only", mock.url()),
        &payload(EventType::CourseEnrollment, 0),
    )
    .await
    .unwrap();
    let err = mock
        .wait_for_requests(2, Duration::from_millis(50))
        .await
        .unwrap_err();
    assert_eq!(err.received.len(), 1);
    let msg = err.to_string();
    assert!(
        msg.starts_with("waited 50ms for 2 request(s) but 1 arrived"),
        "{msg}"
    );
    assert!(
        msg.contains("#1 POST /only COURSE_ENROLLMENT attempt 0 → 200"),
        "{msg}"
    );
}

#[tokio::test]
async fn set_script_and_clear_restart_positions() {
    let mock = scripted("503", Per::Delivery).await;
    let c = client();
    let body = payload(EventType::CourseEnrollment, 0);
    assert_eq!(status(&c, &mock.url(), &body).await, 503);
    mock.set_script("500,200").unwrap();
    assert_eq!(status(&c, &mock.url(), &body).await, 500);
    assert_eq!(status(&c, &mock.url(), &body).await, 200);
    assert_eq!(mock.requests()[2].attempt, 2);
    mock.clear();
    assert!(mock.requests().is_empty());
    assert_eq!(status(&c, &mock.url(), &body).await, 500);
    let r = &mock.requests()[0];
    assert_eq!((r.seq, r.attempt), (4, 0));
}

#[tokio::test]
async fn shutdown_ends_hanging_and_delayed_requests() {
    let mock = MockReceiver::builder()
        .route("/hang", "hang")
        .unwrap()
        .route("/slow", "200@1h")
        .unwrap()
        .start()
        .await
        .unwrap();
    let body = payload(EventType::CourseEnrollment, 0);
    let mut pending = Vec::new();
    for path in ["/hang", "/slow"] {
        let url = format!("{}{path}", mock.url());
        let body = body.clone();
        pending.push(tokio::spawn(
            async move { post(&client(), &url, &body).await },
        ));
    }
    mock.wait_for_requests(2, WAIT).await.unwrap();
    let addr = mock.address();
    // Returns although one request hangs and one waits an hour.
    tokio::time::timeout(WAIT, mock.shutdown())
        .await
        .expect("shutdown finishes");
    for p in pending {
        let err = p.await.unwrap().expect_err("no answer after shutdown");
        assert!(!err.is_timeout(), "{err:?}");
    }
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}

/// One event fanned out to two URLs of the same receiver is two deliveries (S12): each
/// URL walks the script from its first step, with its own attempt numbers.
#[tokio::test]
async fn one_body_at_two_paths_is_two_deliveries() {
    let mock = scripted("503*2,200", Per::Delivery).await;
    let c = client();
    let body = payload(EventType::CourseEnrollment, 7);
    let (h, k) = (format!("{}/h", mock.url()), format!("{}/k?x=1", mock.url()));
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(status(&c, &h, &body).await);
        got.push(status(&c, &k, &body).await);
    }
    assert_eq!(got, [503, 503, 503, 503, 200, 200]);
    let reqs = mock.requests();
    let attempts: Vec<u32> = reqs.iter().map(|r| r.attempt).collect();
    assert_eq!(attempts, [0, 0, 1, 1, 2, 2], "{}", dump(&reqs));
    let deliveries = mock.deliveries();
    assert_eq!(deliveries.len(), 2, "one per path");
    assert_eq!(deliveries[0].digest, deliveries[1].digest, "same body");
}

/// Issue #13 item 1: sockets that send nothing are closed once the 10 s header timeout
/// has passed (virtual time), and the receiver keeps answering.
#[tokio::test(start_paused = true)]
async fn idle_connections_are_closed_at_the_header_timeout() {
    use tokio::io::AsyncReadExt as _;
    let mock = MockReceiver::builder().start().await.unwrap();
    let started = tokio::time::Instant::now();
    let mut idle = Vec::new();
    for _ in 0..50 {
        idle.push(
            tokio::net::TcpStream::connect(mock.address())
                .await
                .unwrap(),
        );
    }
    let mut buf = [0u8; 64];
    for s in &mut idle {
        let read = tokio::time::timeout(Duration::from_secs(11), s.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0) | Err(_))),
            "a silent connection must be closed within the header timeout: {read:?} after {:?}",
            started.elapsed()
        );
    }
    assert!(started.elapsed() >= Duration::from_secs(10));
    let res = post(
        &client(),
        &format!("{}/hook", mock.url()),
        &payload(EventType::CourseEnrollment, 1),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn memory_keeps_the_last_n_and_says_how_many_were_evicted() {
    let mock = MockReceiver::builder().keep(3).start().await.unwrap();
    let c = client();
    let mut latest = mock.subscribe();
    for n in 0..5 {
        let body = payload(EventType::CourseCompletion, n);
        assert_eq!(
            status(&c, &format!("{}/hook", mock.url()), &body).await,
            200
        );
    }
    // Five arrived, so waiting for five succeeds though only three are in memory.
    let kept = mock.wait_for_requests(5, WAIT).await.unwrap();
    let seqs = |rs: &[RecordedRequest]| rs.iter().map(|r| r.seq).collect::<Vec<_>>();
    assert_eq!(seqs(&kept), [3, 4, 5], "{}", dump(&kept));
    assert_eq!(seqs(&mock.requests_since(3)), [4, 5]);
    assert_eq!(*latest.borrow_and_update(), 5);
    let counts = mock.counts();
    assert_eq!(
        (counts.received, counts.kept, counts.evicted, counts.keep),
        (5, 3, 2, 3)
    );

    let res = c
        .get(format!("{}/_mock/requests?after=4", mock.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-hookjar-evicted"], "2");
    // In memory: seqs latest - kept + 1 ..= latest, i.e. #3 to #5.
    assert_eq!(res.headers()["x-hookjar-latest-seq"], "5");
    assert_eq!(res.headers()["x-hookjar-kept"], "3");
    let listed: Value = res.json().await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["seq"], 5);
    let stats: Value = c
        .get(format!("{}/_mock/stats", mock.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        stats,
        serde_json::json!({"latest_seq": 5, "received": 5, "kept": 3, "evicted": 2, "keep": 3})
    );
    // A retry of an evicted request still counts as a retry.
    let body = payload(EventType::CourseCompletion, 0);
    assert_eq!(
        status(&c, &format!("{}/hook", mock.url()), &body).await,
        200
    );
    let last = mock.requests_since(5);
    assert_eq!((last[0].seq, last[0].attempt), (6, 1));
    latest.changed().await.unwrap();
    assert_eq!(*latest.borrow(), 6);
}

#[tokio::test]
async fn a_torn_journal_gets_a_fresh_line_before_the_first_new_one() {
    let dir = std::env::temp_dir().join(format!("hookjar-mock-torn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("journal.jsonl");
    std::fs::write(&path, "{\"seq\":1}\n{\"seq\":2,\"body\":\"torn by a ki").unwrap();
    let mock = MockReceiver::builder()
        .journal_file(&path)
        .start()
        .await
        .unwrap();
    let body = payload(EventType::LessonCompletion, 0);
    assert_eq!(
        status(&client(), &format!("{}/x", mock.url()), &body).await,
        200
    );
    mock.shutdown().await;
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[1], "{\"seq\":2,\"body\":\"torn by a ki");
    let new: Value = serde_json::from_str(lines[2]).unwrap();
    assert_eq!(new["path"], "/x");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A client that sends a request's head and part of its body, then goes silent, gets a
/// 408 once it has been silent for the header timeout (10 s, virtual time), the
/// connection is closed and nothing is journaled. A body sent in pieces, each within
/// the timeout, is read whole and answered.
#[tokio::test(start_paused = true)]
async fn a_client_silent_mid_body_gets_408_at_the_header_timeout() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mock = MockReceiver::builder().start().await.unwrap();
    let body = payload(EventType::CourseEnrollment, 1);
    let head = format!(
        "POST /hook HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );

    let started = tokio::time::Instant::now();
    let mut s = tokio::net::TcpStream::connect(mock.address())
        .await
        .unwrap();
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
    assert!(
        mock.requests().is_empty(),
        "a body never received is not journaled"
    );

    // Pieces 6 s apart: never 10 s of silence, more than 10 s in all.
    let mut s = tokio::net::TcpStream::connect(mock.address())
        .await
        .unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    for piece in body.chunks(body.len() / 3 + 1) {
        s.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_secs(6)).await;
    }
    let mut got = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(30), s.read(&mut got))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&got[..n]);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(mock.requests().len(), 1);
}

/// A body whose declared length is over the limit is refused at once with 413, before
/// the client has sent it (it would otherwise wait for 8 MiB, or for the 408).
#[tokio::test(start_paused = true)]
async fn a_declared_length_over_the_limit_gets_413_at_once() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mock = MockReceiver::builder().start().await.unwrap();
    let started = tokio::time::Instant::now();
    let mut s = tokio::net::TcpStream::connect(mock.address())
        .await
        .unwrap();
    s.write_all(b"POST /hook HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100000000\r\n\r\n{")
        .await
        .unwrap();
    let mut got = vec![0u8; 256];
    let n = s.read(&mut got).await.unwrap();
    let text = String::from_utf8_lossy(&got[..n]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "answered before any timeout"
    );
    assert!(mock.requests().is_empty());
}

/// Valid JSON nested deeper than a journal line can embed (the line puts the body one
/// level down, and serde_json stops at 128 levels) is answered, journaled with its
/// text and `json: null`, listed, and its line parses; one level less is embedded.
#[tokio::test]
async fn deeply_nested_json_is_journaled_as_text_and_never_breaks_the_journal() {
    let dir = std::env::temp_dir().join(format!("hookjar-mock-deep-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("journal.jsonl");
    let _ = std::fs::remove_file(&path);
    let mock = MockReceiver::builder()
        .journal_file(&path)
        .start()
        .await
        .unwrap();
    let c = client();
    let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    for depth in [126, 127, 128, 5000] {
        let body = nested(depth);
        let answer = post(&c, &format!("{}/deep", mock.url()), body.as_bytes()).await;
        assert_eq!(
            answer.map(|r| r.status().as_u16()).ok(),
            Some(200),
            "depth {depth}"
        );
    }
    let requests = mock.requests();
    assert_eq!(requests.len(), 4, "{}", dump(&requests));
    assert!(requests[0].json.is_some(), "126 levels fit in a line");
    for r in &requests[1..] {
        assert_eq!(r.json, None, "{}", r.summary());
        assert!(r.body.starts_with("[[[["), "the text is kept");
    }
    mock.shutdown().await;
    let text = std::fs::read_to_string(&path).unwrap();
    for line in text.lines() {
        serde_json::from_str::<Value>(line).expect("every journal line parses");
    }
    assert_eq!(text.lines().count(), 4);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The inspector's POST endpoints read their bodies like every other: a client silent
/// mid-body gets 408 at the header timeout instead of holding its connection.
#[tokio::test(start_paused = true)]
async fn the_inspectors_posts_answer_408_to_a_client_silent_mid_body() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mock = MockReceiver::builder().start().await.unwrap();
    for path in ["/_mock/ui/verdicts", "/_mock/ui/resend"] {
        let mut s = tokio::net::TcpStream::connect(mock.address())
            .await
            .unwrap();
        s.write_all(
            format!(
                "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{{"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        let started = tokio::time::Instant::now();
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut got)).await;
        assert!(
            read.is_ok(),
            "{path}: the connection must be closed, not held"
        );
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 408"), "{path}: {text}");
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(10) && waited < Duration::from_secs(11),
            "{path}: {waited:?}"
        );
    }
}

/// "Resend" shows the start of the answer and reads no more of it than it shows: an
/// answer that never ends is cut, not read until the timeout (or into memory).
#[tokio::test]
async fn resend_reads_only_the_start_of_an_endless_answer() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let endless = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = format!("http://{}/hook", endless.local_addr().unwrap());
    tokio::spawn(async move {
        let (mut s, _) = endless.accept().await.unwrap();
        let mut head = [0u8; 4096];
        let _ = s.read(&mut head).await;
        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n")
            .await
            .unwrap();
        let chunk = vec![b'x'; 64 * 1024];
        // Until the mock hangs up.
        while s.write_all(&chunk).await.is_ok() {}
    });
    let mock = MockReceiver::builder().start().await.unwrap();
    let answer = tokio::time::timeout(
        Duration::from_secs(5),
        client()
            .post(format!("{}/_mock/ui/resend", mock.url()))
            .json(&serde_json::json!({
                "url": target, "method": "POST", "headers": [], "body": "{}"
            }))
            .send(),
    )
    .await
    .expect("the resend answers without waiting for the end of an endless answer")
    .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    let shown: Value = answer.json().await.unwrap();
    assert_eq!(shown["status"], 200, "{shown}");
    let body = shown["body"].as_str().unwrap();
    assert_eq!(
        body.chars().count(),
        4097,
        "4,096 characters and an ellipsis"
    );
    assert!(body.ends_with('…'));
}

/// Memory is bounded in bytes, not only in requests: big bodies evict the oldest
/// requests once the kept journal lines pass 64 MiB (the default), and the counts say
/// how many were evicted.
#[tokio::test]
async fn big_bodies_are_evicted_past_the_default_byte_budget() {
    let mock = MockReceiver::builder().start().await.unwrap();
    let c = client();
    let body = |i: usize| format!("{{\"i\":{i},\"pad\":\"{}\"}}", "x".repeat(4 << 20));
    for i in 0..20 {
        assert_eq!(
            status(&c, &format!("{}/big", mock.url()), body(i).as_bytes()).await,
            200
        );
    }
    let counts = mock.counts();
    let kept = mock.requests();
    let kept_bodies: usize = kept.iter().map(|r| r.body.len()).sum();
    assert!(
        kept_bodies <= 32 << 20,
        "{} requests with {kept_bodies} bytes of bodies kept: {counts:?}",
        kept.len()
    );
    assert_eq!(counts.received, 20);
    assert_eq!(counts.evicted, 20 - kept.len() as u64);
    assert!(
        kept.last().unwrap().body.starts_with("{\"i\":19,"),
        "the newest is kept"
    );
}

/// DNS rebinding: a page whose own name was made to resolve to this machine could
/// read the journal (with its Authorization headers) and resend through the mock. A
/// browser (it sends `Sec-Fetch-Site`) asking for the mock's own endpoints under
/// another name is refused; IP addresses, localhost and programs are not.
#[tokio::test]
async fn a_browser_under_a_rebound_name_cannot_read_the_journal() {
    let mock = MockReceiver::builder().start().await.unwrap();
    let port = mock.address().port();
    let http = reqwest::Client::new();
    let get = |host: String, browser: bool| {
        let mut req = http
            .get(format!("{}/_mock/requests", mock.url()))
            .header("host", host);
        if browser {
            req = req.header("sec-fetch-site", "same-origin");
        }
        req.send()
    };
    let refused = get(format!("rebind.evil.test:{port}"), true).await.unwrap();
    assert_eq!(refused.status(), 403);
    let text = refused.text().await.unwrap();
    assert!(
        text.contains("127.0.0.1") && text.contains("rebind"),
        "{text}"
    );
    for (host, browser) in [
        (format!("127.0.0.1:{port}"), true),
        (format!("localhost:{port}"), true),
        (format!("[::1]:{port}"), true),
        (format!("mock:{port}"), false), // a program, e.g. another container
    ] {
        let ok = get(host.clone(), browser).await.unwrap();
        assert_eq!(ok.status(), 200, "{host} (browser: {browser})");
    }
    // Webhooks themselves come under any name (a tunnel's, say).
    let posted = http
        .post(format!("{}/hook", mock.url()))
        .header("host", "abc.tunnel.example")
        .header("sec-fetch-site", "cross-site")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);
}

/// The journal keeps a body as text: one that was not valid UTF-8 comes back with
/// U+FFFD in it. Resending it would send other bytes (another digest, so another
/// delivery to the receiver), so the resend refuses it; a UTF-8 body goes as it came.
#[tokio::test]
async fn resend_never_sends_other_bytes_than_were_received() {
    let mock = MockReceiver::builder().start().await.unwrap();
    let target = MockReceiver::builder().start().await.unwrap();
    let latin1 = b"{\"name\": \"Ren\xe9\"}".to_vec();
    for body in [latin1, b"{\"name\": \"Ren\xc3\xa9\"}".to_vec()] {
        let status = client()
            .post(format!("{}/hook", mock.url()))
            .body(body)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
    }
    let recorded = mock.requests();
    let resend = |r: &hookjar_mock::RecordedRequest| {
        client()
            .post(format!("{}/_mock/ui/resend", mock.url()))
            .json(&serde_json::json!({
                "url": format!("{}/again", target.url()), "method": r.method,
                "headers": r.headers, "body": r.body, "digest": r.digest.to_string(),
            }))
            .send()
    };
    let refused = resend(&recorded[0]).await.unwrap();
    assert_eq!(refused.status().as_u16(), 422);
    let why: Value = refused.json().await.unwrap();
    assert!(
        why["detail"].as_str().unwrap().contains("not valid UTF-8"),
        "{why}"
    );
    assert!(target.requests().is_empty(), "nothing was sent");
    let sent = resend(&recorded[1]).await.unwrap();
    assert_eq!(sent.status().as_u16(), 200);
    let again = target.requests();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].digest, recorded[1].digest, "the same bytes");
}

/// Event streams hold their connections; clients that open them and never read
/// could take every connection from the webhooks. At most `MAX_STREAMS` are served
/// at once; the next gets 503 with Retry-After, and webhooks still get through.
#[tokio::test]
async fn event_streams_are_capped_and_leave_room_for_webhooks() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mock = MockReceiver::builder().start().await.unwrap();
    let open = |addr: std::net::SocketAddr| async move {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /_mock/stream HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
            .await
            .unwrap();
        let mut head = vec![0u8; 512];
        let n = s.read(&mut head).await.unwrap();
        (s, String::from_utf8_lossy(&head[..n]).into_owned())
    };
    let mut held = Vec::new();
    for _ in 0..hookjar_mock::ui::MAX_STREAMS {
        let (s, head) = open(mock.address()).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        held.push(s);
    }
    let (_, head) = open(mock.address()).await;
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 5"),
        "{head}"
    );
    let status = client()
        .post(format!("{}/hook", mock.url()))
        .body("{}")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200, "webhooks still get through");
    drop(held);
}
