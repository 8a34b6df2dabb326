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
//!   pagination, JSON/form/multipart bodies, the OpenAPI document of X4.
//! - [`engine`] — the scheduler (one timer at the earliest due instant), the bounded
//!   pool of senders and the batching writer.
//! - [`deliver`] — one POST with reqwest (rustls, redirect limit, timeout), named as a
//!   core `Outcome`.
//! - [`store`] — the store contract and its backends: SQLite (WAL, run on tokio's
//!   blocking pool) and PostgreSQL (several processes, leased claims).
//! - [`pgtemp`] — a throw-away PostgreSQL cluster for tests and load runs.
//! - [`clock`] — the only reader of the wall clock: tokio instants for deadlines,
//!   absolute micros for stored instants, X3's time scale.
//! - [`error`] — typed errors of the store and of start-up.
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

pub mod api;
pub mod clock;
pub mod deliver;
pub mod engine;
pub mod error;
pub mod pgtemp;
pub mod store;

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
    api_key: String,
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
        let owner = store::OwnerLock::acquire(&config.store)?;
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

        let sender = deliver::Sender::new(config.timeout, config.max_redirects)?;
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
            api_key.clone(),
            config.reveal_secrets,
            wake,
            format!("http://{addr}"),
        );
        let app = api::router(state);
        let mut stop = shutdown_rx;
        let server = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "the API server stopped");
            }
        });

        Ok(Dispatcher {
            addr,
            api_key,
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
        &self.api_key
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
        assert!(generate_api_key().len() == 26);
    }
}
