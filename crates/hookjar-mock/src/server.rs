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
use hookjar_net::BodyError;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming as Body;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::{Expectations, MockConfig, Per, ScriptUpdate, Scripts, normalise_path};
use crate::decide::{Answer, Counts, DEFAULT_KEEP, DEFAULT_KEEP_BYTES, Incoming, Inspected, State};
use crate::errors::{StartError, WaitError};
use crate::record::{Clock, Delivery, Record, RecordedRequest, SystemClock, group_records, owned};

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

    /// Keep the last `n` requests in memory (default 10,000); older ones are evicted
    /// one per new request (the journal file keeps every one). Attempt numbers and
    /// script positions are kept for the `max(n, 100,000)` most recently seen
    /// deliveries.
    pub fn keep(mut self, n: usize) -> Self {
        self.config.keep = Some(n);
        self
    }

    /// Keep at most `bytes` of journal lines in memory (default 64 MiB, about 32 MiB
    /// of bodies: a line holds its body twice); the oldest requests are evicted
    /// first, the newest is always kept.
    pub fn keep_bytes(mut self, bytes: usize) -> Self {
        self.config.keep_bytes = Some(bytes);
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
            Some(path) => Some(JournalFile {
                pending: Mutex::new(Pending::default()),
                file: Mutex::new(Writer {
                    file: open_journal(path).map_err(|source| StartError::Journal {
                        path: path.clone(),
                        source,
                    })?,
                    spare: Vec::new(),
                    written: 0,
                }),
            }),
        };
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (latest_tx, _) = watch::channel(0u64);
        let keep = self.config.keep.unwrap_or(DEFAULT_KEEP);
        let keep_bytes = self.config.keep_bytes.unwrap_or(DEFAULT_KEEP_BYTES);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::with_keep(self.config.scripts, keep).keep_bytes(keep_bytes)),
            expect: self.config.expect,
            journal,
            latest: latest_tx,
            clock: self.clock,
            started: Instant::now(),
            on_request: self.on_request,
            shutdown: shutdown_rx,
            ui: self.ui,
            body_idle: self.config.limits.header_timeout,
            streams: Arc::default(),
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

/// Opens the journal file for appending. A file left without a final newline (a
/// line torn by a crash) gets one first, so this run's lines start on a fresh line.
fn open_journal(path: &std::path::Path) -> std::io::Result<File> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)?;
    let len = file.metadata()?.len();
    if len > 0 {
        file.seek(SeekFrom::Start(len - 1))?;
        let mut last = [0u8; 1];
        file.read_exact(&mut last)?;
        if last[0] != b'\n' {
            tracing::warn!(
                path = %path.display(),
                "journal file does not end with a newline (a line torn by a crash?); starting on a fresh line"
            );
            file.write_all(b"\n")?;
        }
    }
    Ok(file)
}

/// The journal file. Lines are appended to `pending` in `seq` order (under the state
/// lock); whichever request of an event-loop turn comes first writes everything
/// pending in one `write`, and no request is answered before its line is written.
struct JournalFile {
    pending: Mutex<Pending>,
    file: Mutex<Writer>,
}

#[derive(Default)]
struct Pending {
    buf: Vec<u8>,
    /// Bytes appended since the start.
    appended: u64,
}

struct Writer {
    file: File,
    spare: Vec<u8>,
    /// Bytes written since the start.
    written: u64,
}

impl JournalFile {
    /// Appends one line; returns the byte count that must be written before the
    /// request is answered.
    fn append(&self, line: &[u8]) -> u64 {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.buf.extend_from_slice(line);
        p.buf.push(b'\n');
        p.appended += line.len() as u64 + 1;
        p.appended
    }

    /// Makes sure the first `upto` bytes appended are written to the file.
    fn write_upto(&self, upto: u64) {
        let mut w = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if w.written >= upto {
            return;
        }
        let w = &mut *w;
        let appended = {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::swap(&mut p.buf, &mut w.spare);
            p.appended
        };
        if let Err(e) = w.file.write_all(&w.spare) {
            tracing::error!(error = %e, "mock receiver: cannot append to the journal file");
        }
        w.spare.clear();
        w.written = appended;
    }
}

struct Shared {
    state: Mutex<State>,
    expect: Expectations,
    journal: Option<JournalFile>,
    /// The newest `seq` recorded; receivers are also woken by a clear.
    latest: watch::Sender<u64>,
    clock: Arc<dyn Clock>,
    started: Instant,
    on_request: Option<Hook>,
    shutdown: watch::Receiver<bool>,
    /// Serve the inspector page (`crate::ui`).
    ui: bool,
    /// How long a client may pause in the middle of a body (the header timeout).
    body_idle: std::time::Duration,
    /// Event streams open now (at most `crate::ui::MAX_STREAMS`).
    streams: Arc<std::sync::atomic::AtomicUsize>,
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
            .field("counts", &self.shared.state().counts())
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

    /// Every webhook request kept in memory (the last `keep`, see
    /// [`MockReceiverBuilder::keep`]), in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        owned(&self.records_since(0))
    }

    /// The requests kept in memory whose `seq` is greater than `seq`, in arrival
    /// order: what arrived since a reader last looked. Pair with [`Self::subscribe`].
    pub fn requests_since(&self, seq: u64) -> Vec<RecordedRequest> {
        owned(&self.records_since(seq))
    }

    /// A receiver of the newest `seq` recorded (0 before the first request): it
    /// changes with every request, so a reader can wait for news cheaply.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.latest.subscribe()
    }

    /// How many requests were received, are kept and were evicted from memory.
    pub fn counts(&self) -> Counts {
        self.shared.state().counts()
    }

    fn records_since(&self, seq: u64) -> Vec<Arc<Record>> {
        self.shared.state().since(seq).cloned().collect()
    }

    /// The requests kept in memory grouped by body digest: each delivery's attempts
    /// and the gaps between them.
    pub fn deliveries(&self) -> Vec<Delivery> {
        let records = self.records_since(0);
        group_records(records.iter().map(|r| &**r))
    }

    /// Waits until at least `n` requests have arrived (since the start or the last
    /// clear), or fails after `timeout` listing what did arrive. Returns every request
    /// kept in memory.
    pub async fn wait_for_requests(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<RecordedRequest>, WaitError> {
        let arrived = || self.shared.state().counts().received >= n as u64;
        let mut rx = self.shared.latest.subscribe();
        let reached = tokio::time::timeout(timeout, rx.wait_for(|_| arrived())).await;
        let requests = self.requests();
        match reached {
            Ok(Ok(_)) => Ok(requests),
            _ if arrived() => Ok(requests),
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
    let n = shared.state().clear();
    shared.latest.send_modify(|_| {});
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
            let path = req.uri().path();
            if (path == "/_mock" || path.starts_with("/_mock/")) && rebound(&req) {
                return Ok(crate::ui::whole(error_reply(
                    StatusCode::FORBIDDEN,
                    "a browser asked for the mock's own endpoints under a host name that is not an IP address or localhost: refused, since a page could rebind its own name to this machine and read the journal (its Authorization headers) or resend through it. Open the inspector as http://127.0.0.1:PORT/_mock/ui or http://localhost:PORT/_mock/ui (programs, which send no Sec-Fetch-Site, may use any name)",
                )));
            }
            if crate::ui::claims(path, shared.ui) {
                let (changes, down) = (shared.latest.subscribe(), shared.shutdown.clone());
                return Ok(crate::ui::handle(
                    req,
                    changes,
                    down,
                    shared.body_idle,
                    &shared.streams,
                )
                .await);
            }
            handle(req, &shared, &fault).await.map(crate::ui::whole)
        }
    });
    hookjar_net::serve_connection(io, svc, limits, shared.shutdown.clone()).await;
}

/// Whether a browser sent `req` under a host name that could have been rebound to
/// this machine (DNS rebinding): the mock's own endpoints have no auth, so a page
/// whose name resolved here could read the journal, with its `Authorization`
/// headers, and resend through the mock into other local services. Browsers mark
/// their requests with `Sec-Fetch-Site`; programs (tests, curl, a container reaching
/// the mock by its service name) do not, and are left alone. An IP address or
/// `localhost` (`*.localhost`) cannot be rebound.
fn rebound<B>(req: &Request<B>) -> bool {
    if !req.headers().contains_key("sec-fetch-site") {
        return false;
    }
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().host())
        .unwrap_or("");
    !is_unrebindable_host(host)
}

/// `host` (as in a `Host` header, port allowed) is an IP address or `localhost`.
fn is_unrebindable_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        return rest
            .split(']')
            .next()
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok());
    } else {
        host.rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(host, |(name, _)| name)
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name.parse::<std::net::Ipv4Addr>().is_ok()
        || name == "localhost"
        || name.ends_with(".localhost")
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
    let body = match hookjar_net::read_body(body, MAX_BODY, shared.body_idle).await {
        Ok(b) => b,
        Err(BodyError::TooLarge { .. }) => {
            return Ok(json_reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                &serde_json::json!({"detail": format!("body larger than {MAX_BODY} bytes; hookjar mock does not record it")}),
            ));
        }
        Err(e @ (BodyError::Stalled { .. } | BodyError::TooSlow { .. })) => {
            return Ok(stalled_reply(&e));
        }
        // The client went away while sending the body.
        Err(BodyError::Failed(_)) => return Err(Fault("body not received")),
    };
    let incoming = Incoming {
        path: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned()),
        method: parts.method,
        headers: parts.headers,
        body,
        arrived,
        since_start: arrived.saturating_duration_since(shared.started),
        received_at,
    };
    // Parsing and checks happen before the lock.
    let inspected = Inspected::new(incoming, &shared.expect);
    let (plan, written_upto) = record(shared, inspected);
    if let (Some(journal), Some(upto)) = (&shared.journal, written_upto) {
        // Let the other requests of this event-loop turn add their lines, then write
        // them all at once (or find them written); only then answer.
        tokio::task::yield_now().await;
        journal.write_upto(upto);
    }

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
            let mut res = Response::new(Full::new(Bytes::from(body)));
            *res.status_mut() =
                StatusCode::from_u16(code).expect("scripts hold statuses 200 to 599");
            let h = res.headers_mut();
            h.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            for (k, v) in headers {
                h.append(
                    k,
                    http::HeaderValue::try_from(v).expect("scripted header values are valid"),
                );
            }
            Ok(res)
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

/// Decides under the state lock and queues the journal line (in arrival order, still
/// under the lock), then calls the hook. Returns the plan and, with a journal file,
/// how many bytes must be written before the answer. Synchronous: no lock is held
/// across an `.await`.
fn record(shared: &Shared, inspected: Inspected) -> (crate::decide::Plan, Option<u64>) {
    let (record, plan, upto) = {
        let mut st = shared.state();
        let (record, plan) = st.decide(inspected);
        let upto = shared.journal.as_ref().map(|j| j.append(&record.line));
        drop(st);
        // After the state lock (a waiter reads the state while holding the watch's
        // lock). The value only grows. Waking receivers costs locks; with none (the
        // usual case under load) the value is only stored.
        shared.latest.send_if_modified(|latest| {
            if record.seq <= *latest {
                return false;
            }
            *latest = record.seq;
            shared.latest.receiver_count() > 0
        });
        (record, plan, upto)
    };
    if let Some(hook) = &shared.on_request {
        hook(&record.to_public());
    }
    (plan, upto)
}

/// `408` for a client that stopped in the middle of its body; the connection closes
/// (the rest of that body will not be read).
fn stalled_reply(e: &BodyError) -> Reply {
    let mut res = json_reply(
        StatusCode::REQUEST_TIMEOUT,
        &serde_json::json!({"detail": format!("{e}; hookjar mock does not record it")}),
    );
    res.headers_mut().insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    res
}

fn json_reply(status: StatusCode, value: &serde_json::Value) -> Reply {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(value.to_string())))
        .expect("a JSON answer is valid")
}

fn raw_json_reply(status: StatusCode, body: Vec<u8>) -> Reply {
    let mut res = Response::new(Full::new(Bytes::from(body)));
    *res.status_mut() = status;
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    res
}

/// The records after `after` and the counts, read under one lock.
fn snapshot(shared: &Shared, after: u64) -> (Vec<Arc<Record>>, Counts) {
    let st = shared.state();
    (st.since(after).cloned().collect(), st.counts())
}

/// Adds the counts of the journal in memory to an answer of `/_mock/*`, read under
/// the same lock as the records it lists.
fn with_counts(mut res: Reply, counts: Counts) -> Reply {
    let h = res.headers_mut();
    h.insert(EVICTED_HEADER, http::HeaderValue::from(counts.evicted));
    h.insert(
        LATEST_SEQ_HEADER,
        http::HeaderValue::from(counts.latest_seq),
    );
    h.insert(KEPT_HEADER, http::HeaderValue::from(counts.kept));
    res
}

fn error_reply(status: StatusCode, detail: impl Into<String>) -> Reply {
    json_reply(status, &serde_json::json!({"detail": detail.into()}))
}

const ENDPOINTS: &str =
    "GET/DELETE /_mock/requests, GET /_mock/deliveries, GET/PUT /_mock/script, GET /_mock/stats";

/// The response header of `GET /_mock/requests` and `/_mock/deliveries` that counts
/// the records evicted from memory (see `--keep`).
pub const EVICTED_HEADER: &str = "x-hookjar-evicted";

/// The response header of `GET /_mock/requests` and `/_mock/deliveries` that gives
/// the newest `seq` given so far. The requests in memory are always the `seq`s
/// from `latest - kept + 1` to `latest`: a poller of `?after=SEQ` drops what it
/// holds below that (evicted, or cleared).
pub const LATEST_SEQ_HEADER: &str = "x-hookjar-latest-seq";

/// The response header that counts the requests in memory (see
/// [`LATEST_SEQ_HEADER`]).
pub const KEPT_HEADER: &str = "x-hookjar-kept";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Filter {
    path: Option<String>,
    event_type: Option<String>,
    digest: Option<String>,
    after: Option<u64>,
}

impl Filter {
    fn keeps(&self, r: &Record) -> bool {
        self.path
            .as_deref()
            .is_none_or(|p| r.path_only() == p || &*r.path == p)
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
                    "bad query: {e}; filter with ?path=/a, ?event_type=COURSE_COMPLETION, ?digest=<16 hex digits> or ?after=SEQ"
                ),
            );
        }
    };
    let method = req.method().clone();
    match (method, req.uri().path()) {
        (Method::GET, "/_mock/requests") => {
            let (records, counts) = snapshot(shared, filter.after.unwrap_or(0));
            // The records' journal lines, as they are: a JSON array of them.
            let mut out =
                Vec::with_capacity(records.iter().map(|r| r.line.len() + 1).sum::<usize>() + 2);
            out.push(b'[');
            for r in records.iter().filter(|r| filter.keeps(r)) {
                if out.len() > 1 {
                    out.push(b',');
                }
                out.extend_from_slice(&r.line);
            }
            out.push(b']');
            with_counts(raw_json_reply(StatusCode::OK, out), counts)
        }
        (Method::GET, "/_mock/stats") => json_reply(
            StatusCode::OK,
            &serde_json::to_value(shared.state().counts()).expect("counts serialise"),
        ),
        (Method::DELETE, "/_mock/requests") => {
            let n = clear(shared);
            json_reply(StatusCode::OK, &serde_json::json!({"cleared": n}))
        }
        (Method::GET, "/_mock/deliveries") => {
            let (records, counts) = snapshot(shared, filter.after.unwrap_or(0));
            let deliveries =
                group_records(records.iter().map(|r| &**r).filter(|r| filter.keeps(r)));
            with_counts(
                json_reply(
                    StatusCode::OK,
                    &serde_json::to_value(deliveries).expect("deliveries serialise"),
                ),
                counts,
            )
        }
        (Method::GET, "/_mock/script") => json_reply(
            StatusCode::OK,
            &serde_json::to_value(shared.state().scripts()).expect("scripts serialise"),
        ),
        (Method::PUT, "/_mock/script") => {
            let body =
                match hookjar_net::read_body(req.into_body(), 64 * 1024, shared.body_idle).await {
                    Ok(b) => b,
                    Err(e @ (BodyError::Stalled { .. } | BodyError::TooSlow { .. })) => {
                        return stalled_reply(&e);
                    }
                    Err(BodyError::TooLarge { .. }) => {
                        return error_reply(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "a script body must be under 64 KiB",
                        );
                    }
                    // The client went away: nobody reads this answer.
                    Err(e @ BodyError::Failed(_)) => {
                        return error_reply(StatusCode::BAD_REQUEST, e.to_string());
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
        (_, "/_mock/requests" | "/_mock/deliveries" | "/_mock/script" | "/_mock/stats") => {
            error_reply(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("method not allowed here; the endpoints are {ENDPOINTS}"),
            )
        }
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
