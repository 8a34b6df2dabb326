//! Helpers for the dispatcher's integration tests: a dispatcher on loopback, an API
//! client, and an in-process scripted receiver that timestamps requests with tokio's
//! clock (so virtual-time tests can measure back-off gaps exactly).

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hookjar_dispatch::{Config, Dispatcher, StoreConfig};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;

pub const KEY: &str = "test-key";

/// Starts a dispatcher with the test key and `tweak` applied to the default config.
pub async fn dispatcher(tweak: impl FnOnce(&mut Config)) -> Dispatcher {
    let mut config = Config {
        api_key: KEY.into(),
        store: StoreConfig::InMemory,
        // Tests create webhooks on example.com; nothing may leave this machine.
        loopback_only: true,
        ..Config::default()
    };
    tweak(&mut config);
    Dispatcher::start(config, "127.0.0.1:0")
        .await
        .expect("the dispatcher starts")
}

/// A client of the management API.
#[derive(Debug, Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

/// A status and a parsed body (`Value::Null` when empty, a string when not JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Api {
    pub fn new(server: &Dispatcher) -> Self {
        Api {
            base: server.url(),
            // Idle pooled connections are dropped before the server's header-read
            // timeout closes them: on a paused clock both would fall on the same
            // instant, and a request sent on a connection the server is closing fails.
            http: reqwest::Client::builder()
                .pool_idle_timeout(hookjar_net::DEFAULT_HEADER_TIMEOUT / 2)
                .build()
                .expect("a client"),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends with the test key.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        Self::answer(
            req.basic_auth(KEY, Some(""))
                .send()
                .await
                .expect("the API answers"),
        )
        .await
    }

    pub async fn answer(resp: reqwest::Response) -> Answer {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("a body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(self.http.get(self.url(path))).await
    }

    pub async fn post_json(&self, path: &str, body: Value) -> Answer {
        self.send(self.http.post(self.url(path)).json(&body)).await
    }

    pub async fn put_json(&self, path: &str, body: Value) -> Answer {
        self.send(self.http.put(self.url(path)).json(&body)).await
    }

    pub async fn patch_json(&self, path: &str, body: Value) -> Answer {
        self.send(self.http.patch(self.url(path)).json(&body)).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.send(self.http.delete(self.url(path))).await
    }

    /// Creates a webhook; panics with the answer unless 201.
    pub async fn create(&self, body: Value) -> Value {
        let a = self.post_json("/v1/webhooks", body).await;
        assert_eq!(a.status, 201, "create failed: {a:?}");
        a.body
    }

    /// Creates an all-types webhook to `url`; returns its id.
    pub async fn hook(&self, url: &str) -> String {
        self.create(json!({ "target_url": url })).await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Emits the fixture of `event_type`; returns the 202 body.
    pub async fn emit(&self, event_type: &str) -> Value {
        let a = self
            .post_json("/v1/events", json!({ "event_type": event_type }))
            .await;
        assert_eq!(a.status, 202, "emit failed: {a:?}");
        a.body
    }

    pub async fn webhook(&self, id: &str) -> Value {
        let a = self.get(&format!("/v1/webhooks/{id}")).await;
        assert_eq!(a.status, 200, "{a:?}");
        a.body
    }

    /// The delivery log of a webhook (first page, up to 100).
    pub async fn deliveries(&self, id: &str) -> Vec<Value> {
        let a = self
            .get(&format!("/v1/webhooks/{id}/deliveries?page_size=100"))
            .await;
        assert_eq!(a.status, 200, "{a:?}");
        a.body["results"].as_array().unwrap().clone()
    }

    pub async fn count_webhooks(&self) -> u64 {
        self.get("/v1/webhooks").await.body["count"]
            .as_u64()
            .unwrap()
    }
}

/// What the in-process receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    Status(u16),
    /// 307 to the same path (a redirect loop).
    RedirectLoop,
    /// 307 to `/done` this many times, then 200 there.
    RedirectThen(u32),
    /// Answer after this long (in tokio time).
    Hang(Duration),
    /// Answer with this status after this long (in tokio time).
    Late(Duration, u16),
    /// This redirect status (301, 302, 303, 307 or 308) to `/moved`, where the next
    /// request is answered 200.
    Moved(u16),
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

struct ReceiverState {
    script: Mutex<Vec<Reply>>,
    log: Mutex<Vec<Received>>,
    count: watch::Sender<usize>,
}

/// A scripted receiver on the current runtime: the replies are used in order and
/// the last one repeats forever.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    state: Arc<ReceiverState>,
}

impl Receiver {
    pub async fn start(script: &[Reply]) -> Self {
        assert!(!script.is_empty());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (count, _) = watch::channel(0);
        let state = Arc::new(ReceiverState {
            script: Mutex::new(script.to_vec()),
            log: Mutex::new(Vec::new()),
            count,
        });
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(Arc::clone(&state));
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver {
            url: format!("http://{addr}/hook"),
            state,
        }
    }

    /// Replaces the script (the new replies start with the next request).
    pub fn set_script(&self, script: &[Reply]) {
        *self.state.script.lock().unwrap() = script.to_vec();
    }

    pub fn requests(&self) -> Vec<Received> {
        self.state.log.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.state.log.lock().unwrap().len()
    }

    /// Waits (in tokio time) until `n` requests arrived; false if they did not
    /// within `within`.
    pub async fn arrived(&self, n: usize, within: Duration) -> bool {
        let mut rx = self.state.count.subscribe();
        tokio::time::timeout(within, rx.wait_for(|c| *c >= n))
            .await
            .is_ok()
    }

    /// Waits (in tokio time: virtual under a paused clock) until `n` requests arrived.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let mut rx = self.state.count.subscribe();
        let ok = tokio::time::timeout(within, rx.wait_for(|c| *c >= n)).await;
        assert!(
            ok.is_ok(),
            "expected {n} requests within {within:?}, got {}: {:#?}",
            self.count(),
            self.requests()
                .iter()
                .map(|r| (r.path.clone(), r.at))
                .collect::<Vec<_>>()
        );
        self.requests()
    }
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    method: axum::http::Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let hop = uri
        .path()
        .strip_prefix("/hop/")
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(0);
    // A redirect hop of one attempt does not use up the script's reply.
    let reply = {
        let mut script = state.script.lock().unwrap();
        match script[0] {
            Reply::RedirectThen(hops) if hop < hops => script[0],
            Reply::Moved(_) if uri.path() == "/moved" => Reply::Status(200),
            _ if script.len() > 1 => script.remove(0),
            first => first,
        }
    };
    let n = {
        let mut log = state.log.lock().unwrap();
        log.push(Received {
            at: Instant::now(),
            method: method.to_string(),
            path: uri.path().to_owned(),
            headers,
            body,
        });
        log.len()
    };
    state.count.send_replace(n);
    match reply {
        Reply::Status(code) => StatusCode::from_u16(code).unwrap().into_response(),
        Reply::RedirectLoop => redirect(uri.path()),
        Reply::RedirectThen(hops) if hop < hops => redirect(&format!("/hop/{}", hop + 1)),
        Reply::RedirectThen(_) => StatusCode::OK.into_response(),
        Reply::Moved(code) => (
            StatusCode::from_u16(code).unwrap(),
            [(axum::http::header::LOCATION, "/moved".to_owned())],
        )
            .into_response(),
        Reply::Hang(d) => {
            tokio::time::sleep(d).await;
            StatusCode::OK.into_response()
        }
        Reply::Late(d, code) => {
            tokio::time::sleep(d).await;
            StatusCode::from_u16(code).unwrap().into_response()
        }
    }
}

fn redirect(to: &str) -> Response {
    (
        StatusCode::TEMPORARY_REDIRECT,
        [(axum::http::header::LOCATION, to.to_owned())],
    )
        .into_response()
}

/// Lets the dispatcher finish what it is doing: under a paused clock, a tokio sleep
/// returns only once the runtime was idle with no store call running.
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// Waits in real time (bounded) until `check` holds; for tests on a real clock
/// against wiremock, which runs on its own thread.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if check().await {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Insta settings for this crate: the top-level `snapshots/` folder, no module prefix.
pub fn snapshot_settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../../snapshots"));
    s.set_prepend_module_to_snapshot(false);
    s.add_filter(r"127\.0\.0\.1:\d+", "127.0.0.1:[port]");
    s.add_filter(
        r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+00:00",
        "[timestamp]",
    );
    s
}
