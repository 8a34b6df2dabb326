//! The inspector's HTTP side without a browser: the page and its assets, the event
//! stream (`/_mock/stream`), the verdicts and resend endpoints, and `--no-ui`.
//! (The page itself is tested in Chromium by `tests/browser.rs`.)

use std::time::Duration;

use hookjar_mock::MockReceiver;
use serde_json::{Value, json};

/// A guard against hanging, not a measurement.
const WAIT: Duration = Duration::from_secs(10);

const BODY: &str = r#"{"event_type":"PING","timestamp":"2026-01-01T00:00:00.000000+00:00"}"#;

async fn post_hook(url: &str) -> u16 {
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("user-agent", "skilljar")
        .body(BODY)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Reads the stream until a whole event (ending in a blank line) has arrived.
async fn next_event(res: &mut reqwest::Response, buf: &mut String) -> Option<String> {
    loop {
        if let Some(end) = buf.find("\n\n") {
            let event = buf[..end].to_owned();
            buf.drain(..end + 2);
            return Some(event);
        }
        let chunk = tokio::time::timeout(WAIT, res.chunk())
            .await
            .expect("the stream sends within the guard time")
            .ok()??;
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[tokio::test]
async fn the_stream_says_when_the_journal_changes_and_ends_at_shutdown() {
    let mock = MockReceiver::builder().start().await.unwrap();
    let mut res = reqwest::get(format!("{}/_mock/stream", mock.url()))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut buf = String::new();
    let first = next_event(&mut res, &mut buf).await.unwrap();
    assert_eq!(first, "retry: 1000\nevent: change\ndata: 0");

    assert_eq!(post_hook(&format!("{}/a", mock.url())).await, 200);
    assert_eq!(
        next_event(&mut res, &mut buf).await.unwrap(),
        "event: change\ndata: 1"
    );
    let cleared: Value = reqwest::Client::new()
        .delete(format!("{}/_mock/requests", mock.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cleared, json!({"cleared": 1}));
    // The data is the journal's length today; clients only use the event as a signal.
    let after_clear = next_event(&mut res, &mut buf).await.unwrap();
    assert!(
        after_clear.starts_with("event: change\ndata: "),
        "{after_clear}"
    );

    // An open stream does not hold up a graceful shutdown, and it ends with it.
    tokio::time::timeout(WAIT, mock.shutdown())
        .await
        .expect("shutdown finishes with a stream open");
    assert_eq!(next_event(&mut res, &mut buf).await, None);
}

#[tokio::test]
async fn the_page_is_served_unless_turned_off() {
    let mock = MockReceiver::builder().start().await.unwrap();
    for (path, kind) in [
        ("/_mock/ui", "text/html"),
        ("/_mock/ui/", "text/html"),
        ("/_mock/ui/inspector.js", "text/javascript"),
        ("/_mock/ui/style.css", "text/css"),
    ] {
        let res = reqwest::get(format!("{}{path}", mock.url())).await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let headers = res.headers();
        assert!(
            headers["content-type"].to_str().unwrap().starts_with(kind),
            "{path}"
        );
        assert!(
            headers["content-security-policy"]
                .to_str()
                .unwrap()
                .starts_with("default-src 'self'"),
            "{path}"
        );
    }
    let res = reqwest::get(format!("{}/_mock/ui/nope", mock.url()))
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    // Loading the page records nothing in the journal.
    assert!(mock.requests().is_empty());

    let off = MockReceiver::builder().ui(false).start().await.unwrap();
    let res = reqwest::get(format!("{}/_mock/ui", off.url()))
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let text = res.text().await.unwrap();
    assert!(text.contains("no mock endpoint /_mock/ui"), "{text}");
    // The JSON endpoints and the stream stay.
    let res = reqwest::get(format!("{}/_mock/requests", off.url()))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(off.requests().is_empty());
}

#[tokio::test]
async fn verdicts_come_from_the_retry_rules() {
    let mock = MockReceiver::builder().start().await.unwrap();
    let c = reqwest::Client::new();
    let url = format!("{}/_mock/ui/verdicts", mock.url());
    let res = c
        .post(&url)
        .json(&json!([
            {"step": "503", "status": 503, "attempt": 0},
            {"step": "410", "status": 410, "attempt": 0},
            {"step": "200", "status": 200, "attempt": 4},
            {"step": "503+retry-after=3600", "status": 503, "attempt": 0},
            {"step": "429+retry-after=1", "status": 429, "attempt": 0},
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(
        v,
        json!([
            {"verdict": "retry", "detail": "HTTP 503 on first attempt; retry 1 in 2s"},
            {"verdict": "deactivate", "detail": "HTTP 410 on first attempt; deactivated (HTTP_4XX_RESPONSE) (S16)"},
            {"verdict": "delivered", "detail": "HTTP 200 on retry 4; delivered"},
            {"verdict": "retry", "detail": "HTTP 503 on first attempt; retry 1 in 2s; Retry-After: 3600 is ignored (S14's back-off and S16 decide)"},
            {"verdict": "deactivate", "detail": "HTTP 429 on first attempt; deactivated (HTTP_4XX_RESPONSE) (S16); Retry-After: 1 is ignored (S14's back-off and S16 decide)"},
        ])
    );
    // Only JSON bodies: a cross-site form cannot post here without a preflight.
    let res = c
        .post(&url)
        .header("content-type", "text/plain")
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    let res = c
        .post(&url)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn resend_posts_the_recorded_request_to_a_url() {
    let mock = MockReceiver::builder()
        .script("202")
        .unwrap()
        .start()
        .await
        .unwrap();
    let c = reqwest::Client::new();
    let url = format!("{}/_mock/ui/resend", mock.url());
    let res = c
        .post(&url)
        .json(&json!({
            "url": format!("{}/copy?x=1", mock.url()),
            "method": "POST",
            "headers": [
                ["content-type", "application/json"],
                ["user-agent", "skilljar"],
                ["host", "elsewhere.example"],
                ["content-length", "999"],
                ["x-client-id", "abc"],
            ],
            "body": BODY,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["status"], 202, "{v}");
    let got = mock.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, "/copy?x=1");
    assert_eq!(got[0].body, BODY);
    assert_eq!(got[0].header("user-agent"), Some("skilljar"));
    assert_eq!(got[0].header("x-client-id"), Some("abc"));
    assert_eq!(
        got[0].header("content-length"),
        Some(BODY.len().to_string().as_str()),
        "connection headers are the client's own"
    );
    assert!(got[0].violations.is_empty(), "{:?}", got[0].violations);

    for bad in ["ftp://127.0.0.1/x", "not a url", "http://"] {
        let res = c
            .post(&url)
            .json(&json!({"url": bad, "body": ""}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{bad}");
        let v: Value = res.json().await.unwrap();
        assert!(
            v["detail"]
                .as_str()
                .unwrap()
                .contains("is not an http(s) URL"),
            "{v}"
        );
    }
    // Nothing listens on port 9 of loopback: the failure is reported, not raised.
    let res = c
        .post(&url)
        .json(&json!({"url": "http://127.0.0.1:9/x", "body": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 502);
    let v: Value = res.json().await.unwrap();
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .starts_with("the request could not be sent"),
        "{v}"
    );
}
