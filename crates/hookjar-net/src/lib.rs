//! `hookjar-net`: the server edge every hookjar server shares (the dispatcher's API and
//! the mock receiver), so that idle or slow clients cannot hold a server down.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use std::sync::Arc;
//! use hookjar_net::{Limits, Stats, accept_loop, serve_connection};
//! use hyper_util::rt::TokioIo;
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let (_stop, shutdown) = tokio::sync::watch::channel(false);
//! let limits = Limits::default();
//! let svc = hyper::service::service_fn(|_req| async {
//!     Ok::<_, std::convert::Infallible>(hyper::Response::new(String::from("hi")))
//! });
//! let conn_shutdown = shutdown.clone();
//! accept_loop(listener, limits, "demo", shutdown, Arc::new(Stats::default()), move |stream, _peer| {
//!     serve_connection(TokioIo::new(stream), svc, limits, conn_shutdown.clone())
//! })
//! .await;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`Limits`] — the settled numbers ([`DEFAULT_HEADER_TIMEOUT`],
//!   [`DEFAULT_MAX_CONNECTIONS`]), which `hookjar serve` and `hookjar mock` take as
//!   `--header-timeout` and `--max-connections`.
//! - [`http1_builder`] — hyper's HTTP/1 server with tokio's timer and the header-read
//!   timeout.
//! - [`accept_loop`] — accepts under the connection cap, backs off when `accept` fails
//!   (out of file descriptors), and waits for every connection at shutdown.
//! - [`serve_connection`] — one connection with graceful shutdown.
//! - [`read_body`] — a request body, bounded in size and in how long the client may
//!   stay silent while sending it.
//! - [`Stats`] — counters the loop keeps (open connections, cap and accept-error
//!   episodes), for tests and logs.
//!
//! # Promises
//! - A client must send a request's head (request line and headers) within the
//!   header timeout, counted from when the server starts waiting for it. That wait
//!   starts again after every answer, so an idle keep-alive connection, a socket that
//!   sends nothing and one that trickles a header every few seconds are all closed
//!   once the header timeout has passed. The timer is tokio's, so tests run it on a
//!   paused clock.
//! - A client that pauses longer than the header timeout in the middle of a body
//!   (after its head, before the body's end) is answered `408` by the server's
//!   handler ([`read_body`]'s [`BodyError::Stalled`]) and the connection is closed;
//!   so is one whose body trickles in for longer than [`BODY_DEADLINE_IDLES`] header
//!   timeouts ([`BodyError::TooSlow`]). So no phase of a request lets a client hold a
//!   connection by saying nothing, or next to nothing.
//! - At most `max_connections` connections are open at once. At the cap the loop
//!   stops accepting (new clients wait in the kernel's backlog until a connection
//!   closes) and logs one warning per episode.
//! - An `accept` that fails (`EMFILE`, `ENFILE`, `ENOBUFS`, …) never stops the server:
//!   the loop logs once per episode, waits (10 ms doubling to 1 s) and tries again,
//!   while open connections keep being served.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioTimer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// How long a client may take to send a request's head, and how long an idle
/// keep-alive connection is kept: 10 s. A client that means to send a request sends
/// its headers in milliseconds; Skilljar's own dispatcher gives a receiver 10 s.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections open at once at most: 512, half the usual soft limit of 1024 file
/// descriptors, leaving room for the dispatcher's store and outgoing deliveries.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// The first wait after a failed `accept`; it doubles up to [`MAX_ACCEPT_BACKOFF`].
pub const MIN_ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
/// The longest wait between two `accept` attempts that failed.
pub const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// What a server holds clients to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// See [`DEFAULT_HEADER_TIMEOUT`].
    pub header_timeout: Duration,
    /// See [`DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// A [`Limits`] that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitsError {
    /// A zero header timeout would close every connection at once.
    #[error("the header timeout must be longer than 0 s (e.g. 10s)")]
    ZeroHeaderTimeout,
    /// A cap of zero would never accept.
    #[error("the connection limit must be at least 1 (e.g. 512)")]
    ZeroConnections,
}

impl Limits {
    /// The limits, or why they cannot work.
    pub fn validated(self) -> Result<Self, LimitsError> {
        if self.header_timeout.is_zero() {
            return Err(LimitsError::ZeroHeaderTimeout);
        }
        if self.max_connections == 0 {
            return Err(LimitsError::ZeroConnections);
        }
        Ok(self)
    }
}

/// hyper's HTTP/1 server builder with tokio's timer and the header-read timeout of
/// `limits` (keep-alive on).
pub fn http1_builder(limits: &Limits) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    builder
}

/// Counters of one accept loop.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections open now.
    pub open: AtomicUsize,
    /// Connections accepted so far.
    pub accepted: AtomicU64,
    /// Times the loop reached the connection cap and had to wait.
    pub cap_episodes: AtomicU64,
    /// `accept` calls that failed (out of file descriptors and the like).
    pub accept_errors: AtomicU64,
}

/// Serves one connection with `service` until the client closes it, the header
/// timeout closes it, or `shutdown` turns true (then in-flight requests finish).
pub async fn serve_connection<I, S, B>(
    io: I,
    service: S,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::Service<hyper::Request<Incoming>, Response = hyper::Response<B>>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conn = http1_builder(&limits).serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(e) = res {
                tracing::debug!(error = %e, "connection ended");
            }
        }
        () = stopped(&mut shutdown) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Why a request body could not be read whole ([`read_body`]).
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// More than the limit arrived.
    #[error("the body is larger than {max} bytes")]
    TooLarge { max: usize },
    /// The client sent nothing for `idle` in the middle of the body.
    #[error("the client sent no part of the body for {} s", idle.as_secs_f64())]
    Stalled { idle: Duration },
    /// The body kept coming, slowly, for longer than [`BODY_DEADLINE_IDLES`] idle times.
    #[error("the client took more than {} s to send the body", total.as_secs_f64())]
    TooSlow { total: Duration },
    /// The connection failed (the client went away) before the body's end.
    #[error("the body could not be read: {0}")]
    Failed(Box<dyn std::error::Error + Send + Sync>),
}

/// How many idle times a body may take in all, counted from the first time
/// [`read_body`] has to wait for it: 6, so one minute at the default 10 s.
pub const BODY_DEADLINE_IDLES: u32 = 6;

/// Reads a request body whole: at most `max` bytes, the client silent for at most
/// `idle` at a time (a body sent slowly in pieces is fine; one that stops is not), and
/// all of it within [`BODY_DEADLINE_IDLES`] idle times of the first wait (a body that
/// trickles in for ever is not). A body that has already arrived, the usual case, is
/// read without a timer; one whose declared length is over `max` is refused before any
/// of it is read.
pub async fn read_body<B>(body: B, max: usize, idle: Duration) -> Result<bytes::Bytes, BodyError>
where
    B: hyper::body::Body<Data = bytes::Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use std::task::Poll;
    // A declared length (`content-length`) over the limit is refused unread.
    if body.size_hint().lower() > max as u64 {
        return Err(BodyError::TooLarge { max });
    }
    let mut body = std::pin::pin!(body);
    let mut first: Option<bytes::Bytes> = None;
    let mut rest: Option<bytes::BytesMut> = None;
    let mut len = 0usize;
    let total = idle * BODY_DEADLINE_IDLES;
    // Set at the first wait: a body that is all there never reads the clock.
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        // One poll first: a frame that is there already needs no timer.
        let frame = match std::future::poll_fn(|cx| Poll::Ready(body.as_mut().poll_frame(cx))).await
        {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                let now = tokio::time::Instant::now();
                let end = *deadline.get_or_insert(now + total);
                let wait = idle.min(end.saturating_duration_since(now));
                match tokio::time::timeout(
                    wait,
                    std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)),
                )
                .await
                {
                    Ok(frame) => frame,
                    Err(_) if wait < idle => return Err(BodyError::TooSlow { total }),
                    Err(_) => return Err(BodyError::Stalled { idle }),
                }
            }
        };
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|e| BodyError::Failed(e.into()))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        len += data.len();
        if len > max {
            return Err(BodyError::TooLarge { max });
        }
        match (&mut first, &mut rest) {
            (None, _) => first = Some(data),
            (Some(head), None) => {
                let mut buf = bytes::BytesMut::with_capacity(len);
                buf.extend_from_slice(head);
                buf.extend_from_slice(&data);
                rest = Some(buf);
            }
            (Some(_), Some(buf)) => buf.extend_from_slice(&data),
        }
    }
    Ok(match (first, rest) {
        (_, Some(buf)) => buf.freeze(),
        (Some(one), None) => one,
        (None, None) => bytes::Bytes::new(),
    })
}

/// Resolves once `shutdown` is true (or its sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|&down| down).await;
}

/// Is this `accept` error about one connection only (the client went away before it
/// was accepted), so the next `accept` can follow at once?
fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted
    )
}

/// Accepts connections on `listener` and runs `handle(stream, peer)` for each in its
/// own task, at most `limits.max_connections` at once, until `shutdown` turns true;
/// then stops accepting and waits for every connection task to end. `name` names the
/// server in log lines (`"API"`, `"mock receiver"`).
pub async fn accept_loop<H, F>(
    listener: TcpListener,
    limits: Limits,
    name: &'static str,
    mut shutdown: watch::Receiver<bool>,
    stats: Arc<Stats>,
    mut handle: H,
) where
    H: FnMut(TcpStream, SocketAddr) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut conns = JoinSet::new();
    let mut backoff = MIN_ACCEPT_BACKOFF;
    let mut failing = 0u64;
    let mut at_cap = false;
    loop {
        // A free slot first: at the cap, stop accepting until a connection ends.
        let permit = match Arc::clone(&slots).try_acquire_owned() {
            Ok(p) => {
                at_cap = false;
                p
            }
            Err(_) => {
                if !at_cap {
                    at_cap = true;
                    stats.cap_episodes.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "{name}: connection limit reached ({} open); new connections wait until one closes (idle ones close after the {:?} header timeout; raise --max-connections to allow more)",
                        limits.max_connections,
                        limits.header_timeout,
                    );
                }
                tokio::select! {
                    p = Arc::clone(&slots).acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                    () = stopped(&mut shutdown) => break,
                    Some(_) = conns.join_next(), if !conns.is_empty() => continue,
                }
            }
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stopped(&mut shutdown) => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        match accepted {
            Ok((stream, peer)) => {
                if failing > 0 {
                    tracing::info!(
                        "{name}: accepting connections again after {failing} failed accept(s)"
                    );
                    failing = 0;
                    backoff = MIN_ACCEPT_BACKOFF;
                }
                let _ = stream.set_nodelay(true);
                stats.accepted.fetch_add(1, Ordering::Relaxed);
                stats.open.fetch_add(1, Ordering::Relaxed);
                let conn = handle(stream, peer);
                let stats = Arc::clone(&stats);
                conns.spawn(async move {
                    conn.await;
                    stats.open.fetch_sub(1, Ordering::Relaxed);
                    drop(permit);
                });
            }
            Err(e) if is_per_connection(&e) => {
                tracing::debug!(error = %e, "{name}: a client went away before it was accepted");
            }
            Err(e) => {
                drop(permit);
                stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                if failing == 0 {
                    tracing::warn!(
                        error = %e,
                        "{name}: cannot accept connections ({e}); retrying with back-off while the {} open connection(s) are served (raise the file limit, e.g. ulimit -n, or lower --max-connections)",
                        stats.open.load(Ordering::Relaxed),
                    );
                }
                failing += 1;
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = stopped(&mut shutdown) => break,
                }
                backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
            }
        }
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}
