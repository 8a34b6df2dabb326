//! `hookjar-dispatch`: the reference Skilljar webhook dispatcher.
//!
//! A management API (S1–S6b, S13, X1, X2, X4) in front of a durable delivery engine
//! (S7–S19) that POSTs events, retries with back-off, deactivates failing webhooks and
//! keeps a delivery log. Every rule comes from `hookjar-core`; this crate performs I/O
//! and keeps time.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use hookjar_dispatch::{Config, Dispatcher, StoreConfig};
//! let config = Config { api_key: "k".into(), store: StoreConfig::InMemory, ..Config::default() };
//! let server = Dispatcher::start(config, "127.0.0.1:0").await?;
//! println!("management API at {}", server.url());
//! server.shutdown().await; // graceful; dropping it instead simulates a crash
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`api`] — axum handlers (thin), DRF-shaped errors ([`api::ApiError`]), S5 auth,
//!   pagination, JSON/form/multipart bodies.
//! - [`openapi`] — the OpenAPI document of X4, in Skilljar's names, pinned by a
//!   snapshot and checked against Skilljar's published facts and by schemathesis.
//! - [`engine`] — the scheduler (one timer at the earliest due instant; each turn
//!   records the finished attempts and claims what is due in one store call) and the
//!   bounded pool of senders.
//! - [`deliver`] — one POST with reqwest (rustls, redirect limit, timeout), named as a
//!   core `Outcome`.
//! - [`store`] — the store contract and its backends: SQLite (WAL, run on tokio's
//!   blocking pool, concurrent emits committed together) and PostgreSQL (several
//!   processes, leased claims).
//! - [`pgtemp`] — a throw-away PostgreSQL cluster for tests and load runs.
//! - [`clock`] — the only reader of the wall clock: tokio instants for deadlines,
//!   absolute micros for stored instants, X3's time scale.
//! - [`error`] — typed errors of the store and of start-up.
//! - [`ui`] — the console page at `/ui` (static assets over the API).
//!
//! # Promises
//! - At-least-once (S19): `POST /v1/events` answers after the event and its deliveries
//!   are committed; retry instants are stored as absolute dispatcher times on one X3
//!   timeline kept in the store, so a restart on the same database resumes every due
//!   or in-flight delivery in place. Attempts are written ahead of their POST: one
//!   interrupted by a crash counts as made (outcome `unknown`), so no delivery sees more
//!   than 61 POSTs nor a retry before its back-off.
//! - One owner per file store (an OS lock); store errors answer 503 naming the cause,
//!   and the engine retries its bookkeeping until the store takes writes again.
//! - Identical bytes (X5): the payload is serialised once at emit and resent unchanged.
//! - Virtual time: deadlines use `tokio::time`, so a runtime with a paused clock runs
//!   the 61-attempt, 50-hour life-cycle at once. (Under a paused clock the receiver
//!   should run on the same runtime: tokio jumps time forward whenever that runtime
//!   waits on I/O from another thread.)
//! - Secrets (passwords, header values, the API key) are never logged.
//! - The API runs on `hookjar-net`'s accept loop: a client must send a request's
//!   headers within [`Config::limits`]' header timeout (idle keep-alive connections
//!   close after it too, and a pause that long in the middle of a body is answered
//!   `408`), at most `max_connections` are open at once, and running out of file
//!   descriptors only pauses accepting.

pub mod api;
pub mod clock;
pub mod deliver;
pub mod engine;
pub mod error;
#[cfg(feature = "faults")]
pub mod faults;
pub mod openapi;
pub mod pgtemp;
pub mod store;
pub mod ui;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hookjar_core::RetryPolicy;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

pub use clock::Clock;
pub use error::{StartError, StoreError};
pub use store::StoreConfig;

/// How a dispatcher runs. Its `Debug` output hides the API key.
#[derive(Clone)]
pub struct Config {
    /// The API key clients send as the Basic username (S5); it may not contain `:`.
    /// Empty: the key kept in the store, generated and saved on its first start
    /// (see [`Dispatcher::api_key`]).
    pub api_key: String,
    /// The retry schedule (S14–S15).
    pub policy: RetryPolicy,
    /// How long one POST may take before it counts as a timeout (S18).
    pub timeout: Duration,
    /// X3: one second of real time counts as this many seconds of back-off (finite,
    /// above 0, at most 1,000,000). Ignored when `clock` is given.
    pub time_scale: f64,
    /// Show stored passwords in clear, as Skilljar does (S3).
    pub reveal_secrets: bool,
    /// Where webhooks, events and deliveries are kept.
    pub store: StoreConfig,
    /// Redirects followed before `TOO_MANY_REDIRECTS` (S18).
    pub max_redirects: usize,
    /// Attempts in flight at most at once.
    pub concurrency: usize,
    /// Attempts in flight at most at once to one webhook, so a slow endpoint cannot
    /// hold up the others (capped at `concurrency`).
    pub per_webhook_concurrency: usize,
    /// A wall clock (and scale) to use instead of the system's: tests drive it with
    /// tokio's paused clock, and give a restarted dispatcher a later wall time. The
    /// X3 timeline itself always comes from the store.
    pub clock: Option<Clock>,
    /// What the API holds its clients to: header-read timeout and connection cap.
    pub limits: hookjar_net::Limits,
    /// Deliver and ping only to loopback targets (`127.0.0.0/8`, `::1`,
    /// `localhost`); any other target fails as a connect error without being
    /// contacted. For test runs that must not reach the network.
    pub loopback_only: bool,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("api_key", &"[hidden]")
            .field("policy", &self.policy)
            .field("timeout", &self.timeout)
            .field("time_scale", &self.time_scale)
            .field("reveal_secrets", &self.reveal_secrets)
            .field("store", &self.store)
            .field("max_redirects", &self.max_redirects)
            .field("concurrency", &self.concurrency)
            .field("per_webhook_concurrency", &self.per_webhook_concurrency)
            .field("clock", &self.clock)
            .field("limits", &self.limits)
            .field("loopback_only", &self.loopback_only)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            api_key: String::new(),
            policy: RetryPolicy::default(),
            timeout: Duration::from_secs(10),
            time_scale: 1.0,
            reveal_secrets: false,
            store: StoreConfig::InMemory,
            max_redirects: deliver::MAX_REDIRECTS,
            concurrency: 64,
            per_webhook_concurrency: 16,
            clock: None,
            limits: hookjar_net::Limits::default(),
            loopback_only: false,
        }
    }
}

/// A running dispatcher: the API server and the delivery engine.
///
/// [`Dispatcher::shutdown`] stops gracefully. Dropping it without shutdown aborts
/// both at once, like a crash: attempts in flight are lost and resumed by the next
/// dispatcher on the same database.
#[derive(Debug)]
pub struct Dispatcher {
    addr: SocketAddr,
    api_key: HiddenKey,
    store: store::Store,
    /// This process owns the store (S19) until the dispatcher stops or is dropped.
    owner: Option<store::OwnerLock>,
    shutdown: watch::Sender<bool>,
    server: Option<JoinHandle<()>>,
    engine: Option<JoinHandle<()>>,
}

impl Dispatcher {
    /// Binds `addr` (e.g. `127.0.0.1:0`) and starts.
    pub async fn start(config: Config, addr: &str) -> Result<Self, StartError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind {
                addr: addr.to_owned(),
                source,
            })?;
        Dispatcher::from_listener(config, listener).await
    }

    /// Starts on a bound listener: opens the store, resumes deliveries left in
    /// flight, then serves the API and runs the engine.
    pub async fn from_listener(config: Config, listener: TcpListener) -> Result<Self, StartError> {
        let policy = config
            .policy
            .validated()
            .map_err(|e| StartError::Config(e.to_string()))?;
        if config.concurrency == 0 || config.per_webhook_concurrency == 0 {
            return Err(StartError::Config(
                "concurrency and per-webhook concurrency must be at least 1".into(),
            ));
        }
        let limits = config
            .limits
            .validated()
            .map_err(|e| StartError::Config(e.to_string()))?;
        if !config.api_key.is_empty() {
            hookjar_core::webhook::validate_api_key(&config.api_key).map_err(StartError::Config)?;
        }
        let clock = config
            .clock
            .unwrap_or_else(|| Clock::system(config.time_scale));
        hookjar_core::timeline::validate_time_scale(match config.clock {
            Some(c) => c.scale(),
            None => config.time_scale,
        })
        .map_err(|e| StartError::Config(e.to_string()))?;
        let addr = listener.local_addr().map_err(StartError::LocalAddr)?;
        let owner_config = config.store.clone();
        let owner = tokio::task::spawn_blocking(move || store::OwnerLock::acquire(&owner_config))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))??;
        let store = store::Store::connect(&config.store).await?;
        // X3: one timeline across restarts, kept in the store.
        let timeline = store.timeline(clock.wall_now(), clock.scale()).await?;
        let clock = clock.with_timeline(timeline);
        let api_key = if config.api_key.is_empty() {
            store.kept_api_key(generate_api_key()).await?
        } else {
            config.api_key
        };
        let resumed = engine::recover(&store, &clock, &policy).await?;
        let pending = store.pending_count().await?;
        if pending > 0 {
            tracing::info!(pending, resumed, "resuming deliveries from the store");
        }

        let sender = deliver::Sender::new(config.timeout, config.max_redirects)?
            .loopback_only(config.loopback_only);
        let wake = Arc::new(Notify::new());
        store.subscribe(Arc::clone(&wake));
        let (shutdown, shutdown_rx) = watch::channel(false);

        let engine = Arc::new(engine::Engine {
            store: store.clone(),
            clock,
            policy,
            sender: sender.clone(),
            concurrency: config.concurrency,
            per_webhook: config.per_webhook_concurrency.min(config.concurrency),
            wake: Arc::clone(&wake),
        });
        let engine = tokio::spawn(engine.run(shutdown_rx.clone()));

        let state = api::AppState::new(
            store.clone(),
            clock,
            sender,
            wake,
            api::ApiSettings {
                api_key: api_key.clone(),
                reveal_secrets: config.reveal_secrets,
                base_url: format!("http://{addr}"),
                body_idle: limits.header_timeout,
            },
        );
        let app = api::router(state).merge(ui::router(clock));
        let server = tokio::spawn(serve(listener, app, limits, shutdown_rx));

        Ok(Dispatcher {
            addr,
            api_key: HiddenKey(api_key),
            store,
            owner,
            shutdown,
            server: Some(server),
            engine: Some(engine),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address the API listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API key in use: the configured one, or the one kept in the store.
    pub fn api_key(&self) -> &str {
        &self.api_key.0
    }

    /// Test hook: the store, to inject store faults ([`store::Store::refuse_writes`]).
    #[doc(hidden)]
    pub fn store(&self) -> &store::Store {
        &self.store
    }

    /// Stops gracefully: the API stops accepting, attempts in flight finish and are
    /// recorded; deliveries not yet due stay in the store.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(engine) = self.engine.take() {
            let _ = engine.await;
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        self.owner.take();
    }
}

impl Drop for Dispatcher {
    /// Without [`Dispatcher::shutdown`], stop at once (a crash, for restart tests).
    fn drop(&mut self) {
        if let Some(engine) = self.engine.take() {
            engine.abort();
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
        // Like a killed process, let go of the store at once.
        self.owner.take();
    }
}

/// Serves the API through hookjar-net's accept loop: header-read timeout, connection
/// cap, back-off when `accept` fails; graceful when `shutdown` turns true.
async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: hookjar_net::Limits,
    shutdown: watch::Receiver<bool>,
) {
    let conn_shutdown = shutdown.clone();
    hookjar_net::accept_loop(
        listener,
        limits,
        "API",
        shutdown,
        Arc::new(hookjar_net::Stats::default()),
        move |stream, _peer| {
            let service = hyper_util::service::TowerToHyperService::new(app.clone());
            hookjar_net::serve_connection(
                hyper_util::rt::TokioIo::new(stream),
                service,
                limits,
                conn_shutdown.clone(),
            )
        },
    )
    .await;
}

/// The API key, kept out of `Debug` output.
struct HiddenKey(String);

impl std::fmt::Debug for HiddenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[hidden]")
    }
}

/// A fresh API key for `hookjar serve` when none is given: 26 lowercase base-36
/// characters (128 random bits).
pub fn generate_api_key() -> String {
    let a = hookjar_core::webhook::webhook_id(rand::random());
    let b = hookjar_core::webhook::webhook_id(rand::random());
    format!("{a}{b}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_api_key() {
        let c = Config {
            api_key: "sekrit-key".into(),
            ..Config::default()
        };
        let text = format!("{c:?}");
        assert!(!text.contains("sekrit-key"), "{text}");
        let text = format!("{:?}", HiddenKey("sekrit-key".into()));
        assert_eq!(text, "[hidden]");
        assert!(generate_api_key().len() == 26);
    }

    /// Issue #13 item 1: sockets that send nothing, or trickle one header every 5 s,
    /// are closed once the 10 s header timeout has passed (virtual time), and the API
    /// keeps answering.
    #[tokio::test(start_paused = true)]
    async fn idle_api_connections_are_closed_at_the_header_timeout() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let config = Config {
            api_key: "k".into(),
            ..Config::default()
        };
        let server = Dispatcher::start(config, "127.0.0.1:0").await.unwrap();
        let started = tokio::time::Instant::now();
        let mut idle = Vec::new();
        for _ in 0..50 {
            idle.push(
                tokio::net::TcpStream::connect(server.local_addr())
                    .await
                    .unwrap(),
            );
        }
        let mut trickler = tokio::net::TcpStream::connect(server.local_addr())
            .await
            .unwrap();
        trickler
            .write_all(b"GET /v1/ping HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let (mut trickle_rd, mut trickle_wr) = trickler.into_split();
        let trickle = tokio::spawn(async move {
            for n in 0.. {
                tokio::time::sleep(Duration::from_secs(5)).await;
                if trickle_wr
                    .write_all(format!("X-Slow-{n}: 1\r\n").as_bytes())
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        let limit = Duration::from_secs(11);
        let mut buf = [0u8; 64];
        for s in idle
            .iter_mut()
            .map(|s| s as &mut (dyn tokio::io::AsyncRead + Unpin))
            .chain([&mut trickle_rd as &mut (dyn tokio::io::AsyncRead + Unpin)])
        {
            let read = tokio::time::timeout(limit, s.read(&mut buf)).await;
            assert!(
                matches!(read, Ok(Ok(0) | Err(_))),
                "a silent connection must be closed within the header timeout: {read:?} after {:?}",
                started.elapsed()
            );
        }
        assert!(started.elapsed() >= Duration::from_secs(10));
        trickle.abort();
        let mut s = tokio::net::TcpStream::connect(server.local_addr())
            .await
            .unwrap();
        s.write_all(b"GET /v1/ping HTTP/1.1\r\nHost: x\r\nAuthorization: Basic azo=\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        server.shutdown().await;
    }
}
