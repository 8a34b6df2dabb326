//! The endpoint check against endpoints that are right and endpoints that are wrong,
//! played by the mock receiver. Slow endpoints run on tokio's paused clock: the mock's
//! delays and the check's timeout are both tokio timers, so nothing waits for real.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use hookjar_conformance::check::{self, CheckConfig, Quiet};
use hookjar_conformance::{Report, Status};
use hookjar_core::EventType;
use hookjar_mock::MockReceiver;
use hookjar_tests::snapshot_settings;
use time::macros::datetime;

/// A fixed start that moves one millisecond per payload, so every payload differs as it
/// does in real runs.
fn now() -> time::OffsetDateTime {
    static TICK: AtomicI64 = AtomicI64::new(0);
    let n = TICK.fetch_add(1, Ordering::Relaxed);
    datetime!(2026-11-27 12:00:00 UTC) + time::Duration::milliseconds(n)
}

async fn check(mock: &MockReceiver, configure: impl FnOnce(&mut CheckConfig)) -> Report {
    let mut config = CheckConfig::new(format!("{}/skilljar", mock.url()));
    configure(&mut config);
    check::run(&config, now, &mut Quiet).await.unwrap()
}

fn case<'a>(report: &'a Report, id: &str) -> &'a hookjar_conformance::CaseResult {
    report
        .cases
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no case {id}: {report:#?}"))
}

#[tokio::test]
async fn a_correct_endpoint_passes() {
    let mock = MockReceiver::builder()
        .basic_auth("hook", "s3cret")
        .require_header("x-client-id", "abc")
        .start()
        .await
        .unwrap();
    let report = check(&mock, |c| {
        c.basic_auth = Some(("hook".into(), "s3cret".into()));
        c.headers.insert("x-client-id".into(), "abc".into());
    })
    .await;
    assert!(report.passed(), "{}", report.to_table(false, false));
    assert_eq!(report.totals().failed, 0);
    // 10 types, ping, 2 auth, 2 header, duplicate, unknown fields, values, concurrent,
    // late retry, new type, future timestamp, latency.
    assert_eq!(report.cases.len(), 23);
    let mut config = CheckConfig::new("http://x");
    config.basic_auth = Some(("hook".into(), "s3cret".into()));
    config.headers.insert("x-client-id".into(), "abc".into());
    assert_eq!(check::case_count(&config), 23, "the progress bar's length");
    assert_eq!(case(&report, "auth.missing").status, Status::Pass);
    assert_eq!(
        case(&report, "header.x-client-id.wrong").status,
        Status::Pass
    );
    // The mock saw Skilljar's headers on every accepted request.
    let reqs = mock.requests();
    let accepted: Vec<_> = reqs.iter().filter(|r| r.status == Some(200)).collect();
    // The ten events and the ping, then per type two duplicates, unknown fields,
    // values, a concurrent one and a late retry, then a new type and a future
    // timestamp.
    assert_eq!(accepted.len(), 11 + 10 * 6 + 2);
    let new_type: Vec<_> = accepted
        .iter()
        .filter(|r| r.event_type.as_deref() == Some("HOOKJAR_FUTURE_EVENT_TYPE"))
        .collect();
    assert_eq!(new_type.len(), 1);
    assert!(
        accepted
            .iter()
            .filter(|r| r.event_type.as_deref() != Some("HOOKJAR_FUTURE_EVENT_TYPE"))
            .all(|r| r.violations.is_empty()),
        "{:?}",
        accepted.iter().map(|r| &r.violations).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn an_endpoint_that_ignores_basic_auth_fails() {
    let mock = MockReceiver::builder().start().await.unwrap();
    let report = check(&mock, |c| {
        c.basic_auth = Some(("hook".into(), "s3cret".into()));
    })
    .await;
    assert!(!report.passed());
    let missing = case(&report, "auth.missing");
    assert_eq!(missing.status, Status::Fail);
    assert!(
        missing
            .seen
            .contains("anyone who knows your URL can post forged events")
    );
    assert_eq!(case(&report, "auth.wrong").status, Status::Fail);
    assert_eq!(report.totals().failed, 2);
    snapshot_settings().bind(|| {
        insta::assert_snapshot!("check__ignores_basic_auth", report.to_table(false, false));
    });
}

#[tokio::test]
async fn an_endpoint_that_404s_some_types_fails_with_the_consequence() {
    let mock = MockReceiver::builder()
        .for_type(EventType::CourseCompletion, "404")
        .unwrap()
        .for_type(EventType::QuizCompletion, "503")
        .unwrap()
        .start()
        .await
        .unwrap();
    let report = check(&mock, |_| {}).await;
    assert!(!report.passed());
    let c = case(&report, "event.COURSE_COMPLETION");
    assert_eq!(c.status, Status::Fail);
    assert!(
        c.seen
            .contains("a 404 here would deactivate your webhook at once (S16"),
        "{}",
        c.seen
    );
    let q = case(&report, "event.QUIZ_COMPLETION");
    assert!(
        q.seen
            .contains("a 503 would be retried until a 2xx, at most 60 times over ~50.1h"),
        "{}",
        q.seen
    );
    assert_eq!(
        case(&report, "event.COURSE_ENROLLMENT").status,
        Status::Pass
    );
    assert_eq!(report.totals().failed, 2);
    assert_eq!(case(&report, "auth").status, Status::Skip);
}

#[tokio::test(start_paused = true)]
async fn a_slow_endpoint_warns_then_fails_past_the_timeout() {
    let slow = MockReceiver::builder()
        .script("200@6s")
        .unwrap()
        .start()
        .await
        .unwrap();
    let report = check(&slow, |c| c.types = vec![EventType::CourseEnrollment]).await;
    let e = case(&report, "event.COURSE_ENROLLMENT");
    assert_eq!(e.status, Status::Warn, "{e:?}");
    assert!(
        e.seen.contains("slower than half the 10s timeout"),
        "{}",
        e.seen
    );
    assert_eq!(case(&report, "latency").status, Status::Warn);
    assert!(report.passed(), "a warning does not fail the run");

    let too_slow = MockReceiver::builder()
        .script("200@12s")
        .unwrap()
        .start()
        .await
        .unwrap();
    let report = check(&too_slow, |c| {
        c.types = vec![EventType::CourseEnrollment];
        c.timeout = Duration::from_secs(10);
    })
    .await;
    let e = case(&report, "event.COURSE_ENROLLMENT");
    assert_eq!(e.status, Status::Fail);
    assert!(e.seen.starts_with("timeout"), "{}", e.seen);
    assert!(
        e.seen.contains("retried until a 2xx, at most 60 times"),
        "{}",
        e.seen
    );
    assert_eq!(case(&report, "latency").status, Status::Fail);
    assert!(!report.passed());

    // A longer --timeout lets the answer come, but Skilljar's own 10 s still holds:
    // there, every attempt times out and the webhook ends deactivated. Every case
    // that waited that long fails, the duplicate one included.
    let report = check(&too_slow, |c| {
        c.types = vec![EventType::CourseEnrollment];
        c.timeout = Duration::from_secs(30);
    })
    .await;
    for id in [
        "event.COURSE_ENROLLMENT",
        "ping",
        "duplicate",
        "unknown-fields",
        "late-retry",
        "latency",
    ] {
        let c = case(&report, id);
        assert_eq!(c.status, Status::Fail, "{c:?}");
        assert!(
            c.seen.contains("Skilljar gives up after 10s") && c.seen.contains("RETRY_COUNT"),
            "{}",
            c.seen
        );
    }
    assert!(!report.passed());
}

/// Skilljar's last retry resends an event's first bytes 50 hours later, after newer
/// events (S11, S15, S19): an endpoint that refuses old timestamps ("replay
/// protection") passed every case before `late-retry` (a review's receiver got exit 0).
#[tokio::test]
async fn an_endpoint_that_refuses_old_timestamps_fails_the_late_retry() {
    use wiremock::{Mock, MockServer, Request, ResponseTemplate};
    struct FreshOnly;
    impl wiremock::Respond for FreshOnly {
        fn respond(&self, req: &Request) -> ResponseTemplate {
            let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
            let fresh = v["timestamp"]
                .as_str()
                .and_then(|t| {
                    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .is_some_and(|t| now() - t < time::Duration::minutes(5));
            ResponseTemplate::new(if fresh { 200 } else { 400 })
        }
    }
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::method("POST"))
        .respond_with(FreshOnly)
        .mount(&server)
        .await;
    let mut config = CheckConfig::new(format!("{}/hook", server.uri()));
    config.types = vec![EventType::CourseEnrollment];
    let report = check::run(&config, now, &mut Quiet).await.unwrap();
    let late = case(&report, "late-retry");
    assert_eq!(late.status, Status::Fail, "{late:?}");
    assert!(late.seen.contains("HTTP 400"), "{}", late.seen);
    assert!(late.seen.contains("old or out-of-order"), "{}", late.seen);
    assert!(
        late.expected.contains("stamped 50.1h ago"),
        "{}",
        late.expected
    );
    assert_eq!(case(&report, "duplicate").status, Status::Pass);
    assert!(!report.passed());
}

/// Unknown keys go into each of the payload's objects, not only `user` (a review's
/// receiver that refused an unknown key inside `course` passed before).
#[tokio::test]
async fn unknown_keys_are_sent_inside_every_object() {
    let mock = MockReceiver::builder().start().await.unwrap();
    let report = check(&mock, |c| c.types = vec![EventType::CourseEnrollment]).await;
    assert_eq!(case(&report, "unknown-fields").status, Status::Pass);
    let probe = mock
        .requests()
        .into_iter()
        .filter_map(|r| r.json)
        .find(|v| v.get("hookjar_unknown_field").is_some())
        .expect("the unknown-fields probe arrived");
    for object in ["user", "course", "domain", "purchase"] {
        assert_eq!(
            probe[object]["hookjar_unknown_nested"], true,
            "{object}: {probe}"
        );
    }
}

/// A 303 to a page that answers the GET: every accepted-answer case fails, the
/// duplicate case included (neither copy got in), and the forged-request probes
/// see no forged event get in (a warning, not a pass and not a failure).
#[tokio::test]
async fn a_303_to_a_page_fails_every_delivery_and_only_warns_on_forged_requests() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/skilljar"))
        .respond_with(ResponseTemplate::new(303).insert_header("location", "/login"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/login"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<form>log in</form>"))
        .mount(&server)
        .await;
    let mut config = CheckConfig::new(format!("{}/skilljar", server.uri()));
    config.types = vec![EventType::CourseEnrollment];
    config.basic_auth = Some(("u".into(), "p".into()));
    let report = check::run(&config, now, &mut Quiet).await.unwrap();
    // The ping too: its failure says what the redirect did, not "a 200 is a success"
    // (a review saw that).
    for id in [
        "event.COURSE_ENROLLMENT",
        "ping",
        "duplicate",
        "unknown-fields",
        "late-retry",
    ] {
        let c = case(&report, id);
        assert_eq!(c.status, Status::Fail, "{c:?}");
        assert!(
            c.seen.contains("303 redirect turned the POST into a GET"),
            "{c:?}"
        );
        assert!(!c.seen.contains("a 200 is a success"), "{c:?}");
    }
    for id in ["auth.missing", "auth.wrong"] {
        let c = case(&report, id);
        assert_eq!(c.status, Status::Warn, "{c:?}");
        assert!(c.seen.contains("no forged event got in"), "{c:?}");
    }
}

/// The probes after the events send a type the endpoint accepted: an endpoint that
/// refuses one type fails that type's case only.
#[tokio::test]
async fn probes_send_a_type_the_endpoint_accepted() {
    use wiremock::matchers::{body_string_contains, method};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_string_contains("\"DOMAIN_ENROLLMENT\""))
        .respond_with(ResponseTemplate::new(400))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&server)
        .await;
    let mut config = CheckConfig::new(format!("{}/skilljar", server.uri()));
    config.types = vec![EventType::DomainEnrollment, EventType::CourseEnrollment];
    let report = check::run(&config, now, &mut Quiet).await.unwrap();
    assert_eq!(
        case(&report, "event.DOMAIN_ENROLLMENT").status,
        Status::Fail
    );
    for id in ["event.COURSE_ENROLLMENT", "duplicate", "unknown-fields"] {
        assert_eq!(
            case(&report, id).status,
            Status::Pass,
            "{:?}",
            case(&report, id)
        );
    }
}

/// A redirect to another origin drops Authorization (as Python's requests does);
/// the 401 that follows says so.
#[tokio::test]
async fn a_401_after_a_redirect_to_another_origin_says_the_auth_was_dropped() {
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let there = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&there)
        .await;
    let here = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(307)
                .insert_header("location", format!("{}/skilljar", there.uri())),
        )
        .mount(&here)
        .await;
    let mut config = CheckConfig::new(format!("{}/skilljar", here.uri()));
    config.types = vec![EventType::CourseEnrollment];
    config.basic_auth = Some(("u".into(), "p".into()));
    let report = check::run(&config, now, &mut Quiet).await.unwrap();
    let c = case(&report, "event.COURSE_ENROLLMENT");
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(c.seen.contains("dropped the Authorization header"), "{c:?}");
    let got = there.received_requests().await.unwrap();
    assert!(got.iter().all(|r| !r.headers.contains_key("authorization")));
}

#[tokio::test]
async fn an_endpoint_that_rejects_duplicates_fails() {
    // Per delivery (body digest): the first POST of a body gets 200, its repeat 409.
    let mock = MockReceiver::builder()
        .route("/skilljar", "200,409")
        .unwrap()
        .start()
        .await
        .unwrap();
    let report = check(&mock, |c| c.types = vec![EventType::PathCompletion]).await;
    let d = case(&report, "duplicate");
    assert_eq!(d.status, Status::Fail);
    // Both sends, each with its time (the module docs promise both times).
    assert!(
        d.seen.starts_with("HTTP 200 in ") && d.seen.contains("ms then HTTP 409 in "),
        "{}",
        d.seen
    );
    assert!(
        d.seen.contains("deactivate your webhook at once"),
        "{}",
        d.seen
    );
}

/// An endpoint that answers a POST to any path but `/moved` with `status` and
/// `Location: /moved`, and everything else with 200 (issue #8, S18).
async fn redirecting_endpoint(status: u16) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head = loop {
                    let n = conn.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some((head, _)) = hookjar_tests::complete_request(&buf) {
                        break head;
                    }
                };
                let answer = if head.starts_with("POST ") && !head.starts_with("POST /moved ") {
                    format!(
                        "HTTP/1.1 {status} Moved\r\nLocation: /moved\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    )
                } else {
                    "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned()
                };
                let _ = conn.write_all(answer.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}/skilljar")
}

#[tokio::test]
async fn s18_an_endpoint_that_redirects_a_post_into_a_get_fails() {
    for status in [301, 302, 303] {
        let url = redirecting_endpoint(status).await;
        let report = check::run(&CheckConfig::new(url), now, &mut Quiet)
            .await
            .unwrap();
        let c = case(&report, "event.COURSE_ENROLLMENT");
        assert_eq!(c.status, Status::Fail, "{status}: {c:#?}");
        assert!(
            c.seen.contains(&format!("{status}")) && c.seen.contains("GET"),
            "{status}: {}",
            c.seen
        );
    }
    // 307 keeps the POST and its body: the event arrives.
    let url = redirecting_endpoint(307).await;
    let report = check::run(&CheckConfig::new(url), now, &mut Quiet)
        .await
        .unwrap();
    assert_eq!(
        case(&report, "event.COURSE_ENROLLMENT").status,
        Status::Pass
    );
}

#[tokio::test]
async fn s16_a_429_fails_with_a_warning_that_it_deactivates_on_skilljar() {
    let mock = MockReceiver::builder()
        .for_type(EventType::CourseEnrollment, "429")
        .unwrap()
        .start()
        .await
        .unwrap();
    let report = check(&mock, |_| {}).await;
    let c = case(&report, "event.COURSE_ENROLLMENT");
    assert_eq!(c.status, Status::Fail);
    assert!(
        c.seen.contains("rate limit") && c.seen.contains("deactivate"),
        "{}",
        c.seen
    );
}

/// A wiremock responder from a function of the request body.
struct ByBody(fn(&serde_json::Value, &wiremock::Request) -> u16);

impl wiremock::Respond for ByBody {
    fn respond(&self, req: &wiremock::Request) -> wiremock::ResponseTemplate {
        let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
        wiremock::ResponseTemplate::new((self.0)(&v, req))
    }
}

async fn check_against(
    answer: fn(&serde_json::Value, &wiremock::Request) -> u16,
    configure: impl FnOnce(&mut CheckConfig),
) -> Report {
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(ByBody(answer))
        .mount(&server)
        .await;
    let mut config = CheckConfig::new(format!("{}/hook", server.uri()));
    configure(&mut config);
    check::run(&config, now, &mut Quiet).await.unwrap()
}

/// Learners are named O'Brien and Siobhán, and courses have quotes and emoji in
/// their titles: an endpoint that breaks on them (SQL built from text, an ASCII-only
/// store) passed every case before `values` (a review's receivers got exit 0).
#[tokio::test]
async fn an_endpoint_that_breaks_on_real_names_fails_values() {
    let report = check_against(
        |v, _| {
            let text = v.to_string();
            if text.contains("O'Brien") || text.contains('🚀') {
                500
            } else {
                200
            }
        },
        |_| {},
    )
    .await;
    let values = case(&report, "values");
    assert_eq!(values.status, Status::Fail, "{values:?}");
    assert!(
        values.seen.contains("HTTP 500") && values.seen.contains("UTF-8"),
        "{}",
        values.seen
    );
    assert!(values.expected.contains("O'Brien"), "{}", values.expected);
    for id in ["duplicate", "unknown-fields", "late-retry"] {
        assert_eq!(case(&report, id).status, Status::Pass, "{id}");
    }
    assert!(!report.passed());
}

/// The probes run for every type the endpoint accepted, and a failure names the
/// type: an endpoint that checks Basic auth only in its enrollment handlers, or
/// refuses unknown keys only for completions, passed before (the probes sent one
/// type, a review's receivers got exit 0).
#[tokio::test]
async fn probes_run_for_every_accepted_type_and_name_the_one_that_fails() {
    let report = check_against(
        |v, req| {
            let t = v["event_type"].as_str().unwrap_or_default();
            let enrollment = t.ends_with("_ENROLLMENT");
            let authed = req.headers.get("authorization").is_some_and(|a| {
                a.to_str().unwrap_or_default() == "Basic aG9vazpzM2NyZXQ=" // hook:s3cret
            });
            if enrollment && !authed {
                return 401;
            }
            if t == "COURSE_COMPLETION" && v.to_string().contains("hookjar_unknown_nested") {
                return 422;
            }
            200
        },
        |c| c.basic_auth = Some(("hook".into(), "s3cret".into())),
    )
    .await;
    let missing = case(&report, "auth.missing");
    assert_eq!(missing.status, Status::Fail, "{missing:?}");
    assert!(
        missing
            .seen
            .starts_with("COURSE_COMPLETION: accepted with HTTP 200")
            && missing.seen.contains("the same for LESSON_COMPLETION"),
        "{}",
        missing.seen
    );
    let unknown = case(&report, "unknown-fields");
    assert_eq!(unknown.status, Status::Fail, "{unknown:?}");
    assert!(
        unknown.seen.starts_with("COURSE_COMPLETION: HTTP 422"),
        "{}",
        unknown.seen
    );
    assert_eq!(case(&report, "duplicate").status, Status::Pass);
}

/// A type Skilljar may add and a clock a little ahead: refusing them is a warning,
/// not a failure (nothing Skilljar sends today), and says what it would lead to.
#[tokio::test]
async fn refusing_a_new_type_or_a_future_timestamp_warns() {
    let report = check_against(
        |v, _| {
            let known = v["event_type"]
                .as_str()
                .is_some_and(|t| t == "PING" || t.parse::<EventType>().is_ok());
            // `now()` counts from 12:00:00 by the millisecond; the future stamp is
            // 30 s ahead.
            let future = v["timestamp"]
                .as_str()
                .is_some_and(|t| t.starts_with("2026-11-27T12:00:3"));
            if known && !future { 200 } else { 400 }
        },
        |c| c.types = vec![EventType::CourseCompletion],
    )
    .await;
    for (id, words) in [
        ("new-type", "answer 2xx to types you do not handle"),
        (
            "future-timestamp",
            "do not refuse a timestamp in your future",
        ),
    ] {
        let c = case(&report, id);
        assert_eq!(c.status, Status::Warn, "{c:?}");
        assert!(
            c.seen.contains("HTTP 400") && c.seen.contains(words),
            "{}",
            c.seen
        );
    }
    assert!(report.passed(), "{}", report.to_table(false, false));
}

/// The replay-protection advice of `late-retry` is for a refusal (a 4xx) of an old
/// stamp, not for an endpoint that fails everything alike (a review saw it on a
/// receiver that answered 500 to every request).
#[tokio::test]
async fn late_retry_blames_old_timestamps_only_for_a_refusal() {
    let report = check_against(|_, _| 503, |c| c.types = vec![EventType::CourseCompletion]).await;
    let late = case(&report, "late-retry");
    assert_eq!(late.status, Status::Fail, "{late:?}");
    assert!(!late.seen.contains("old or out-of-order"), "{}", late.seen);
}

/// A raw HTTP/1.1 endpoint: each connection on a task of its own, each request
/// (head and `Content-Length` body) answered with what `respond` gives, keep-alive.
/// Counts the connections it accepted and the requests it answered.
async fn raw_endpoint<F, Fut>(
    respond: F,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
)
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = &'static [u8]> + Send,
{
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let (c, r) = (Arc::clone(&connections), Arc::clone(&requests));
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            c.fetch_add(1, Ordering::Relaxed);
            let (r, respond) = (Arc::clone(&r), respond.clone());
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let head_end = loop {
                        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&got[..head_end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while got.len() < head_end + len {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    }
                    got.drain(..head_end + len);
                    let answer = respond().await;
                    r.fetch_add(1, Ordering::Relaxed);
                    if s.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, connections, requests)
}

const OK_200: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";

/// Every request goes on a connection of its own, as Python's `requests.post` sends
/// it: what one case leaves on a connection cannot change the next one's answer (a
/// review's receiver that answered the ping without reading its body got the next
/// case blamed for the 501 its leftover caused).
#[tokio::test]
async fn every_request_goes_on_a_new_connection() {
    let (addr, connections, requests) = raw_endpoint(|| async { OK_200 }).await;
    let mut config = CheckConfig::new(format!("http://{addr}/hook"));
    config.types = vec![EventType::CourseEnrollment, EventType::LessonCompletion];
    let report = check::run(&config, now, &mut Quiet).await.unwrap();
    assert!(report.passed(), "{}", report.to_table(false, false));
    let (connections, requests) = (
        connections.load(Ordering::Relaxed),
        requests.load(Ordering::Relaxed),
    );
    assert!(requests > 10, "{requests}");
    assert_eq!(connections, requests, "requests shared connections");
}

/// Skilljar delivers events side by side: an endpoint with a global lock that
/// answers 409 to a request arriving while it handles another passed every case
/// before `concurrent` (each case sent one request at a time; a review's receiver got
/// exit 0, and four of five concurrent `requests` calls got 409).
#[tokio::test]
async fn an_endpoint_that_refuses_overlapping_requests_fails_concurrent() {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    let busy = Arc::new(AtomicBool::new(false));
    let (addr, _, _) = raw_endpoint(move || {
        let busy = Arc::clone(&busy);
        async move {
            if busy.swap(true, Ordering::SeqCst) {
                return b"HTTP/1.1 409 Conflict\r\ncontent-length: 4\r\n\r\nbusy".as_slice();
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            busy.store(false, Ordering::SeqCst);
            OK_200
        }
    })
    .await;
    let mut config = CheckConfig::new(format!("http://{addr}/hook"));
    config.types = vec![
        EventType::CourseEnrollment,
        EventType::CourseCompletion,
        EventType::LessonCompletion,
        EventType::PathCompletion,
    ];
    let report = check::run(&config, now, &mut Quiet).await.unwrap();
    let c = case(&report, "concurrent");
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(
        c.seen.contains("HTTP 409") && c.seen.contains("side by side"),
        "{}",
        c.seen
    );
    for id in ["duplicate", "values", "late-retry"] {
        assert_eq!(case(&report, id).status, Status::Pass, "{id}");
    }
}
