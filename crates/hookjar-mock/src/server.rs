//! The I/O layer: a hyper HTTP/1 server that drives [`State`] and performs its plans.

use std::fs::File;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hookjar_core::EventType;
use hookjar_core::script::{Script, ScriptError};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming as Body;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::{Expectations, MockConfig, Per, ScriptUpdate, Scripts, normalise_path};
use crate::decide::{Answer, Incoming, Inspected, State};
use crate::errors::{StartError, WaitError};
use crate::record::{Clock, Delivery, RecordedRequest, SystemClock, group_deliveries, owned};

/// The largest body the receiver reads; larger requests get 413.
pub const MAX_BODY: usize = 8 * 1024 * 1024;

/// What `garbage` writes instead of an HTTP answer.
pub const GARBAGE: &[u8] = b"\x00\x01\x02 hookjar-mock garbage: this is not HTTP \xff\xfe\r\n\r\n";

type Hook = Arc<dyn Fn(&RecordedRequest) + Send + Sync>;

/// Builds a [`MockReceiver`]; see the crate docs for an example.
#[must_use = "a builder does nothing until .start() is awaited"]
pub struct MockReceiverBuilder {
    config: MockConfig,
    clock: Arc<dyn Clock>,
    on_request: Option<Hook>,
    ui: bool,
}

impl std::fmt::Debug for MockReceiverBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockReceiverBuilder")
            .field("config", &self.config)
            .field("clock", &self.clock)
            .field("on_request", &self.on_request.is_some())
            .finish()
    }
}

impl MockReceiverBuilder {
    fn new() -> Self {
        MockReceiverBuilder {
            config: MockConfig::default(),
            clock: Arc::new(SystemClock),
            on_request: None,
            ui: true,
        }
    }

    /// Uses every setting of `config` (replacing what was set before).
    pub fn config(mut self, config: MockConfig) -> Self {
        self.config = config;
        self
    }

    /// The default script (default `200`).
    pub fn script(mut self, script: &str) -> Result<Self, ScriptError> {
        self.config.scripts.default = Script::parse(script)?;
        Ok(self)
    }

    /// A script for requests to exactly `path` (the query is ignored).
    pub fn route(mut self, path: &str, script: &str) -> Result<Self, ScriptError> {
        self.config
            .scripts
            .routes
            .insert(normalise_path(path), Script::parse(script)?);
        Ok(self)
    }

    /// A script for payloads whose `event_type` is `event_type`.
    pub fn for_type(mut self, event_type: EventType, script: &str) -> Result<Self, ScriptError> {
        self.config
            .scripts
            .for_type
            .insert(event_type, Script::parse(script)?);
        Ok(self)
    }

    /// Advance scripts per request instead of per delivery.
    pub fn per_request(self) -> Self {
        self.per(Per::Request)
    }

    /// How scripts advance (default [`Per::Delivery`]).
    pub fn per(mut self, per: Per) -> Self {
        self.config.scripts.per = per;
        self
    }

    /// Require `Authorization: Basic base64(user:pass)`; others get 401.
    pub fn basic_auth(mut self, user: impl Into<String>, pass: impl Into<String>) -> Self {
        self.config.expect.basic_auth = Some((user.into(), pass.into()));
        self
    }

    /// Require header `name` with exactly `value`; others get 401.
    pub fn require_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name: String = name.into();
        self.config
            .expect
            .require_headers
            .push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// Append every request to this JSONL file, one line per request, written before
    /// the request is answered.
    pub fn journal_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.journal = Some(path.into());
        self
    }

    /// Listen on `addr` instead of a random loopback port.
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.config.addr = Some(addr);
        self
    }

    /// Stamp requests with this wall clock (default: the system's).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Call `hook` with every request once it is recorded (before it is answered).
    pub fn on_request(mut self, hook: impl Fn(&RecordedRequest) + Send + Sync + 'static) -> Self {
        self.on_request = Some(Arc::new(hook));
        self
    }

    /// Serve the inspector page at `/_mock/ui` (default: yes; `hookjar mock --no-ui`).
    pub fn ui(mut self, enabled: bool) -> Self {
        self.ui = enabled;
        self
    }

    /// Binds the address (default `127.0.0.1:0`, a free port) and starts serving on
    /// the current tokio runtime.
    pub async fn start(self) -> Result<MockReceiver, StartError> {
        let addr = self
            .config
            .addr
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        self.start_on(listener).await
    }

    /// Starts serving on a listener that is already bound.
    pub async fn start_on(self, listener: TcpListener) -> Result<MockReceiver, StartError> {
        let address = listener.local_addr().map_err(StartError::LocalAddr)?;
        let journal = match &self.config.journal {
            None => None,
            Some(path) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| StartError::Journal {
                        path: path.clone(),
                        source,
                    })?,
            )),
        };
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (count_tx, _) = watch::channel(0usize);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(self.config.scripts)),
            expect: self.config.expect,
            journal,
            count: count_tx,
            clock: self.clock,
            started: Instant::now(),
            on_request: self.on_request,
            shutdown: shutdown_rx,
            ui: self.ui,
        });
        let task = tokio::spawn(serve(listener, Arc::clone(&shared), self.config.limits));
        tracing::debug!(%address, "mock receiver listening");
        Ok(MockReceiver {
            shared,
            address,
            shutdown: shutdown_tx,
            task: Some(task),
        })
    }
}

struct Shared {
    state: Mutex<State>,
    expect: Expectations,
    journal: Option<Mutex<File>>,
    count: watch::Sender<usize>,
    clock: Arc<dyn Clock>,
    started: Instant,
    on_request: Option<Hook>,
    shutdown: watch::Receiver<bool>,
    /// Serve the inspector page (`crate::ui`).
    ui: bool,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn shutting_down(&self) {
        let mut rx = self.shutdown.clone();
        // An error means the receiver was dropped: that is a shutdown too.
        let _ = rx.wait_for(|&down| down).await;
    }
}

/// A running mock receiver. Dropping it stops the server; [`MockReceiver::shutdown`]
/// stops it and waits until every connection is closed.
pub struct MockReceiver {
    shared: Arc<Shared>,
    address: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for MockReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockReceiver")
            .field("address", &self.address)
            .field("requests", &self.shared.state().journal().len())
            .finish()
    }
}

impl MockReceiver {
    /// A builder with the defaults: script `200`, per delivery, no auth, no journal
    /// file, a random port on 127.0.0.1.
    pub fn builder() -> MockReceiverBuilder {
        MockReceiverBuilder::new()
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The address the receiver listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Every webhook request so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        owned(self.shared.state().journal())
    }

    /// The requests grouped by body digest: each delivery's attempts and the gaps
    /// between them.
    pub fn deliveries(&self) -> Vec<Delivery> {
        let records = self.shared.state().journal().to_vec();
        group_deliveries(records.iter().map(|r| &**r))
    }

    /// Waits until at least `n` requests are in the journal, or fails after `timeout`
    /// listing what did arrive. Returns every request so far.
    pub async fn wait_for_requests(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<RecordedRequest>, WaitError> {
        let mut rx = self.shared.count.subscribe();
        let reached = tokio::time::timeout(timeout, rx.wait_for(|&c| c >= n)).await;
        let requests = self.requests();
        match reached {
            Ok(Ok(_)) => Ok(requests),
            _ if requests.len() >= n => Ok(requests),
            _ => Err(WaitError {
                expected: n,
                timeout,
                received: requests,
            }),
        }
    }

    /// Replaces the default script; every script starts again from its first step.
    pub fn set_script(&self, script: &str) -> Result<(), ScriptError> {
        let script = Script::parse(script)?;
        self.update_scripts(ScriptUpdate {
            script: Some(script),
            ..ScriptUpdate::default()
        });
        Ok(())
    }

    /// Applies a live change of scripts (what `PUT /_mock/script` does).
    pub fn update_scripts(&self, update: ScriptUpdate) {
        let mut st = self.shared.state();
        let mut scripts = st.scripts().clone();
        scripts.apply(update);
        st.set_scripts(scripts);
    }

    /// The scripts in force.
    pub fn scripts(&self) -> Scripts {
        self.shared.state().scripts().clone()
    }

    /// Forgets every request, attempt count and script position. The journal file
    /// keeps its lines.
    pub fn clear(&self) {
        clear(&self.shared);
    }

    /// Stops accepting, ends waiting and hanging requests, and waits for every
    /// connection to close. The journal file is complete when this returns.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MockReceiver {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

fn clear(shared: &Shared) -> usize {
    let mut st = shared.state();
    let n = st.clear();
    shared.count.send_replace(0);
    n
}

/// The accept loop of hookjar-net: header-read timeout, connection cap, back-off when
/// `accept` fails; ends (after every connection) when the receiver shuts down.
async fn serve(listener: TcpListener, shared: Arc<Shared>, limits: hookjar_net::Limits) {
    let shutdown = shared.shutdown.clone();
    hookjar_net::accept_loop(
        listener,
        limits,
        "mock receiver",
        shutdown,
        Arc::new(hookjar_net::Stats::default()),
        move |stream, _peer| connection(stream, Arc::clone(&shared), limits),
    )
    .await;
}

const FAULT_NONE: u8 = 0;
const FAULT_RESET: u8 = 1;
const FAULT_GARBAGE: u8 = 2;

async fn connection(stream: TcpStream, shared: Arc<Shared>, limits: hookjar_net::Limits) {
    let fault = Arc::new(AtomicU8::new(FAULT_NONE));
    let io = TokioIo::new(FaultIo {
        stream,
        fault: Arc::clone(&fault),
        garbage_sent: false,
    });
    let svc_shared = Arc::clone(&shared);
    let svc = service_fn(move |req| {
        let shared = Arc::clone(&svc_shared);
        let fault = Arc::clone(&fault);
        async move {
            if crate::ui::claims(req.uri().path(), shared.ui) {
                let (changes, down) = (shared.count.subscribe(), shared.shutdown.clone());
                return Ok(crate::ui::handle(req, changes, down).await);
            }
            handle(req, &shared, &fault).await.map(crate::ui::whole)
        }
    });
    hookjar_net::serve_connection(io, svc, limits, shared.shutdown.clone()).await;
}

/// Why a request got no HTTP answer: hyper closes the connection, and [`FaultIo`]
/// turns the close into the fault.
#[derive(Debug, thiserror::Error)]
#[error("scripted fault: {0}")]
struct Fault(&'static str);

type Reply = Response<Full<Bytes>>;

async fn handle(req: Request<Body>, shared: &Shared, fault: &AtomicU8) -> Result<Reply, Fault> {
    let path = req.uri().path();
    if path == "/_mock" || path.starts_with("/_mock/") {
        return Ok(admin(req, shared).await);
    }
    let arrived = Instant::now();
    let received_at = shared.clock.now_utc();
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return Ok(json_reply(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &serde_json::json!({"detail": format!("body larger than {MAX_BODY} bytes; hookjar mock does not record it")}),
                ));
            }
            // The client went away while sending the body.
            return Err(Fault("body not received"));
        }
    };
    let incoming = Incoming {
        method: parts.method.as_str().to_owned(),
        path: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned()),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
        arrived,
        since_start: arrived.saturating_duration_since(shared.started),
        received_at,
    };
    // Parsing and checks happen before the lock.
    let inspected = Inspected::new(incoming, &shared.expect);
    let plan = record(shared, inspected);

    if !plan.delay.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(plan.delay) => {}
            () = shared.shutting_down() => return Err(Fault("shutting down")),
        }
    }
    match plan.answer {
        Answer::Status {
            code,
            headers,
            body,
        } => {
            let mut res = Response::builder()
                .status(code)
                .header(http::header::CONTENT_TYPE, "application/json");
            for (k, v) in headers {
                res = res.header(k, v);
            }
            Ok(res
                .body(Full::new(Bytes::from(body)))
                .expect("scripted statuses and headers are valid"))
        }
        Answer::Reset => {
            fault.store(FAULT_RESET, Ordering::SeqCst);
            Err(Fault("reset"))
        }
        Answer::Garbage => {
            fault.store(FAULT_GARBAGE, Ordering::SeqCst);
            Err(Fault("garbage"))
        }
        Answer::Hang => {
            shared.shutting_down().await;
            Err(Fault("hang ended by shutdown"))
        }
    }
}

/// Decides under the state lock, then appends the journal line (in arrival order)
/// and calls the hook. Synchronous: no lock is held across an `.await`.
fn record(shared: &Shared, inspected: Inspected) -> crate::decide::Plan {
    let (record, plan, journal) = {
        let mut st = shared.state();
        let (record, plan) = st.decide(inspected);
        shared.count.send_replace(st.journal().len());
        // Take the journal file's lock before releasing the state's, so lines are
        // written in arrival order; the write itself happens outside the state lock.
        let journal = shared
            .journal
            .as_ref()
            .map(|j| j.lock().unwrap_or_else(|e| e.into_inner()));
        (record, plan, journal)
    };
    if let Some(mut file) = journal {
        let mut line = serde_json::to_vec(&*record).expect("a record serialises");
        line.push(b'\n');
        if let Err(e) = file.write_all(&line).and_then(|()| file.flush()) {
            tracing::error!(error = %e, "mock receiver: cannot append to the journal file");
        }
    }
    if let Some(hook) = &shared.on_request {
        hook(&record);
    }
    plan
}

fn json_reply(status: StatusCode, value: &serde_json::Value) -> Reply {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(value.to_string())))
        .expect("a JSON answer is valid")
}

fn error_reply(status: StatusCode, detail: impl Into<String>) -> Reply {
    json_reply(status, &serde_json::json!({"detail": detail.into()}))
}

const ENDPOINTS: &str = "GET/DELETE /_mock/requests, GET /_mock/deliveries, GET/PUT /_mock/script";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Filter {
    path: Option<String>,
    event_type: Option<String>,
    digest: Option<String>,
}

impl Filter {
    fn keeps(&self, r: &RecordedRequest) -> bool {
        self.path
            .as_deref()
            .is_none_or(|p| r.path_only() == p || r.path == p)
            && self
                .event_type
                .as_deref()
                .is_none_or(|t| r.event_type.as_deref() == Some(t))
            && self
                .digest
                .as_deref()
                .is_none_or(|d| r.digest.to_string() == d)
    }
}

async fn admin(req: Request<Body>, shared: &Shared) -> Reply {
    let filter = match serde_urlencoded::from_str::<Filter>(req.uri().query().unwrap_or("")) {
        Ok(f) => f,
        Err(e) => {
            return error_reply(
                StatusCode::BAD_REQUEST,
                format!(
                    "bad query: {e}; filter with ?path=/a, ?event_type=COURSE_COMPLETION or ?digest=<16 hex digits>"
                ),
            );
        }
    };
    let method = req.method().clone();
    match (method, req.uri().path()) {
        (Method::GET, "/_mock/requests") => {
            let records = shared.state().journal().to_vec();
            let kept: Vec<&RecordedRequest> = records
                .iter()
                .map(|r| &**r)
                .filter(|r| filter.keeps(r))
                .collect();
            json_reply(
                StatusCode::OK,
                &serde_json::to_value(kept).expect("records serialise"),
            )
        }
        (Method::DELETE, "/_mock/requests") => {
            let n = clear(shared);
            json_reply(StatusCode::OK, &serde_json::json!({"cleared": n}))
        }
        (Method::GET, "/_mock/deliveries") => {
            let records = shared.state().journal().to_vec();
            let deliveries =
                group_deliveries(records.iter().map(|r| &**r).filter(|r| filter.keeps(r)));
            json_reply(
                StatusCode::OK,
                &serde_json::to_value(deliveries).expect("deliveries serialise"),
            )
        }
        (Method::GET, "/_mock/script") => json_reply(
            StatusCode::OK,
            &serde_json::to_value(shared.state().scripts()).expect("scripts serialise"),
        ),
        (Method::PUT, "/_mock/script") => {
            let body = match Limited::new(req.into_body(), 64 * 1024).collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => {
                    return error_reply(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "a script body must be under 64 KiB",
                    );
                }
            };
            match parse_update(&body) {
                Ok(update) => {
                    let mut st = shared.state();
                    let mut scripts = st.scripts().clone();
                    scripts.apply(update);
                    st.set_scripts(scripts);
                    json_reply(
                        StatusCode::OK,
                        &serde_json::to_value(st.scripts()).expect("scripts serialise"),
                    )
                }
                Err(detail) => error_reply(StatusCode::BAD_REQUEST, detail),
            }
        }
        (_, "/_mock/requests" | "/_mock/deliveries" | "/_mock/script") => error_reply(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method not allowed here; the endpoints are {ENDPOINTS}"),
        ),
        (_, other) => error_reply(
            StatusCode::NOT_FOUND,
            format!("no mock endpoint {other}; the endpoints are {ENDPOINTS}"),
        ),
    }
}

/// A `PUT /_mock/script` body: a JSON object (see [`ScriptUpdate`]) or plain script
/// text, which replaces the default script.
fn parse_update(body: &[u8]) -> Result<ScriptUpdate, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8 text".to_owned())?;
    let trimmed = text.trim();
    if trimmed.starts_with('{') {
        serde_json::from_str(trimmed).map_err(|e| {
            format!("{e}; send {{\"script\": \"503*2,200\", \"routes\": {{\"/a\": \"reset\"}}, \"for_type\": {{\"COURSE_COMPLETION\": \"410\"}}, \"per\": \"delivery\"}} (every key optional) or plain script text")
        })
    } else {
        let script = Script::parse(trimmed).map_err(|e| e.to_string())?;
        Ok(ScriptUpdate {
            script: Some(script),
            ..ScriptUpdate::default()
        })
    }
}

/// The connection's socket. When a request asked for a fault, closing the
/// connection performs it: `reset` sets a zero linger so the close is a TCP RST;
/// `garbage` writes [`GARBAGE`] before the close.
struct FaultIo {
    stream: TcpStream,
    fault: Arc<AtomicU8>,
    garbage_sent: bool,
}

impl FaultIo {
    fn fault(&self) -> u8 {
        self.fault.load(Ordering::SeqCst)
    }

    fn apply_on_close(&mut self) {
        match self.fault() {
            FAULT_RESET => {
                let _ = self.stream.set_zero_linger();
            }
            FAULT_GARBAGE if !self.garbage_sent => {
                self.garbage_sent = true;
                // A fresh answer fits in the socket's send buffer.
                let _ = self.stream.try_write(GARBAGE);
            }
            _ => {}
        }
    }
}

impl Drop for FaultIo {
    fn drop(&mut self) {
        self.apply_on_close();
    }
}

impl AsyncRead for FaultIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for FaultIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.fault() {
            // No FIN before the RST.
            FAULT_RESET => {
                self.apply_on_close();
                Poll::Ready(Ok(()))
            }
            FAULT_GARBAGE if !self.garbage_sent => {
                let this = &mut *self;
                match Pin::new(&mut this.stream).poll_write(cx, GARBAGE) {
                    Poll::Ready(_) => {
                        this.garbage_sent = true;
                        Pin::new(&mut this.stream).poll_shutdown(cx)
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
            _ => Pin::new(&mut self.stream).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

// The receiver can be shared between tasks.
const _: fn() = || {
    fn is<T: Send + Sync>() {}
    is::<MockReceiver>();
};
