//! `hookjar-load`: the documented load runs of `docs/performance.md`.
//!
//! Every run talks to loopback only, is bounded in requests and time, and stops by
//! itself. Build in release: `cargo run --release -p hookjar-bench -- <run>`.
//!
//! - `mock` — requests/s of the mock receiver (journal file on) against a bare hyper
//!   server answering 200, under the same client load.
//! - `dispatch` — durable deliveries/s end to end: events emitted through the API,
//!   fanned out, stored in SQLite (a file, WAL), POSTed to a bare hyper receiver.
//! - `restart` — a store holding N pending deliveries: how long the dispatcher takes to
//!   start on it, and to deliver them all.
//! - `shared`, `shared-kill`, `shared-restart` — the PostgreSQL store with one and two
//!   `hookjar serve` processes (see [`shared`]).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use clap::{Parser, Subcommand};
use hookjar_core::{Event, EventType};
use hookjar_dispatch::store::{NewEvent, Store};
use hookjar_dispatch::{Config, Dispatcher, StoreConfig};
use http_body_util::{BodyExt as _, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

mod shared;

#[derive(Debug, Parser)]
#[command(about = "hookjar's load runs (loopback only, bounded)")]
struct Cli {
    #[command(subcommand)]
    run: Run,
}

#[derive(Debug, Subcommand)]
enum Run {
    /// Mock receiver (journal on) vs a bare hyper server: requests/s.
    Mock {
        /// Requests per server.
        #[arg(long, default_value_t = 40_000)]
        requests: u64,
        /// Concurrent keep-alive clients.
        #[arg(long, default_value_t = 32)]
        concurrency: u64,
    },
    /// Durable deliveries/s through the reference dispatcher.
    Dispatch {
        /// Events emitted.
        #[arg(long, default_value_t = 5_000)]
        events: u64,
        /// Webhooks (each on its own URL), so deliveries = events × webhooks.
        #[arg(long, default_value_t = 4)]
        webhooks: u64,
        /// Concurrent emitters.
        #[arg(long, default_value_t = 16)]
        concurrency: u64,
    },
    /// A bare hyper server answering 200, for an outside load generator (wrk) to
    /// compare with `hookjar mock`. Stops after `--seconds`.
    Bare {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8799")]
        addr: SocketAddr,
        /// How long to serve.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// Start-up and drain time with N pending deliveries in the store.
    Restart {
        /// Pending deliveries.
        #[arg(long, default_value_t = 100_000)]
        pending: u64,
    },
    /// Durable deliveries/s with `hookjar serve` processes: SQLite vs PostgreSQL with
    /// one and two processes (a throw-away PostgreSQL cluster, fsync on).
    Shared {
        #[arg(long, default_value_t = 5_000)]
        events: u64,
        #[arg(long, default_value_t = 4)]
        webhooks: u64,
        #[arg(long, default_value_t = 16)]
        concurrency: u64,
        #[arg(long, default_value_t = 3)]
        rounds: u32,
        /// The hookjar binary (default: next to this one).
        #[arg(long)]
        hookjar: Option<PathBuf>,
    },
    /// kill -9 of one of two `hookjar serve` processes on PostgreSQL halfway
    /// through a run: lost and duplicate deliveries.
    SharedKill {
        #[arg(long, default_value_t = 10_000)]
        events: u64,
        #[arg(long, default_value_t = 2)]
        webhooks: u64,
        #[arg(long, default_value_t = 16)]
        concurrency: u64,
        /// The processes' --lease.
        #[arg(long, default_value = "5s")]
        lease: String,
        #[arg(long)]
        hookjar: Option<PathBuf>,
    },
    /// A `hookjar serve` process started on a PostgreSQL store with N pending
    /// deliveries: time to its first delivery.
    SharedRestart {
        #[arg(long, default_value_t = 100_000)]
        pending: u64,
        #[arg(long)]
        hookjar: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.run {
        Run::Mock {
            requests,
            concurrency,
        } => mock_run(requests, concurrency),
        Run::Dispatch {
            events,
            webhooks,
            concurrency,
        } => dispatch_run(events, webhooks, concurrency),
        Run::Restart { pending } => restart_run(pending),
        Run::Shared {
            events,
            webhooks,
            concurrency,
            rounds,
            hookjar,
        } => shared::throughput(
            &hookjar.unwrap_or_else(shared::default_hookjar),
            events,
            webhooks,
            concurrency,
            rounds,
        ),
        Run::SharedKill {
            events,
            webhooks,
            concurrency,
            lease,
            hookjar,
        } => shared::kill(
            &hookjar.unwrap_or_else(shared::default_hookjar),
            events,
            webhooks,
            concurrency,
            &lease,
        ),
        Run::SharedRestart { pending, hookjar } => {
            shared::restart(&hookjar.unwrap_or_else(shared::default_hookjar), pending)
        }
        Run::Bare { addr, seconds } => {
            let rt = one_thread()?;
            rt.block_on(async {
                let served = Arc::new(AtomicU64::new(0));
                let listener = TcpListener::bind(addr).await?;
                let bound = serve_bare(listener, Arc::clone(&served));
                println!("bare hyper on http://{bound} for {seconds} s");
                tokio::time::sleep(Duration::from_secs(seconds)).await;
                println!("served {} requests", served.load(Ordering::Relaxed));
                Ok(())
            })
        }
    }
}

/// A runtime with one worker thread: server and client each get one of the 2 cores.
fn one_thread() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?)
}

/// A bare hyper HTTP/1 server on a random port that counts requests and answers 200.
async fn bare_hyper(count: Arc<AtomicU64>) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    Ok(serve_bare(listener, count))
}

/// Serves `listener` as a bare hyper HTTP/1 server: reads each body, answers 200 with
/// a short JSON body, counts requests.
fn serve_bare(listener: TcpListener, count: Arc<AtomicU64>) -> SocketAddr {
    let addr = listener.local_addr().expect("bound listener");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let count = Arc::clone(&count);
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let count = Arc::clone(&count);
                    async move {
                        let _ = req.into_body().collect().await;
                        count.fetch_add(1, Ordering::Relaxed);
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                            b"{\"ok\":true}",
                        ))))
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// Sends `total` POSTs from `concurrency` keep-alive clients; returns requests/s.
fn load(url: &str, total: u64, concurrency: u64) -> anyhow::Result<f64> {
    let rt = one_thread()?;
    let url = url.to_owned();
    rt.block_on(async move {
        let client = reqwest::Client::builder().no_proxy().build()?;
        let next = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let (client, url, next) = (client.clone(), url.clone(), Arc::clone(&next));
            tasks.push(tokio::spawn(async move {
                let base = time::macros::datetime!(2026-11-27 00:00 UTC);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return Ok::<_, reqwest::Error>(());
                    }
                    // A distinct, valid payload per request, as real deliveries are.
                    let at = base + time::Duration::microseconds(i as i64);
                    let body = Event::fixture(EventType::CourseEnrollment, at).to_payload();
                    client
                        .post(&url)
                        .header("content-type", "application/json")
                        .header("user-agent", "skilljar")
                        .body(body.bytes().clone())
                        .send()
                        .await?
                        .bytes()
                        .await?;
                }
            }));
        }
        for t in tasks {
            t.await??;
        }
        Ok::<_, anyhow::Error>(total as f64 / start.elapsed().as_secs_f64())
    })
}

fn mock_run(requests: u64, concurrency: u64) -> anyhow::Result<()> {
    let server_rt = one_thread()?;
    let bare_count = Arc::new(AtomicU64::new(0));
    let bare = server_rt.block_on(bare_hyper(Arc::clone(&bare_count)))?;
    let journal = std::env::temp_dir().join(format!("hookjar-load-{}.jsonl", std::process::id()));
    let mock = server_rt.block_on(
        hookjar_mock::MockReceiver::builder()
            .journal_file(&journal)
            .start(),
    )?;
    // Warm-up, then measure each server twice, alternating.
    load(&format!("http://{bare}/hook"), 2_000, concurrency)?;
    load(&format!("{}/hook", mock.url()), 2_000, concurrency)?;
    let mut bare_rates = Vec::new();
    let mut mock_rates = Vec::new();
    for _ in 0..2 {
        bare_rates.push(load(&format!("http://{bare}/hook"), requests, concurrency)?);
        mock_rates.push(load(
            &format!("{}/hook", mock.url()),
            requests,
            concurrency,
        )?);
    }
    let best = |v: &[f64]| v.iter().cloned().fold(0.0, f64::max);
    let (b, m) = (best(&bare_rates), best(&mock_rates));
    let journaled = std::fs::read_to_string(&journal)?.lines().count();
    println!(
        "mock run: {requests} requests × 2 rounds per server, {concurrency} concurrent keep-alive clients"
    );
    println!("  bare hyper:     {b:>9.0} req/s  (rounds: {bare_rates:.0?})");
    println!("  hookjar mock:   {m:>9.0} req/s  (rounds: {mock_rates:.0?}), journal file on");
    println!("  ratio mock/bare: {:.2}", m / b);
    println!(
        "  journal lines written: {journaled}; requests in memory: {}",
        mock.requests().len()
    );
    let _ = std::fs::remove_file(&journal);
    Ok(())
}

fn temp_db(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hookjar-load-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join("hookjar.db")
}

/// The reference dispatcher on the SQLite file `db`, API key `k`, a random port.
async fn dispatcher_on(db: &std::path::Path) -> anyhow::Result<Dispatcher> {
    Ok(Dispatcher::start(
        Config {
            api_key: "k".into(),
            store: StoreConfig::File(db.to_owned()),
            ..Config::default()
        },
        "127.0.0.1:0",
    )
    .await?)
}

async fn api_post(
    client: &reqwest::Client,
    url: String,
    body: serde_json::Value,
) -> anyhow::Result<u16> {
    let resp = client
        .post(url)
        .basic_auth("k", Some(""))
        .json(&body)
        .send()
        .await?;
    Ok(resp.status().as_u16())
}

fn dispatch_run(events: u64, webhooks: u64, concurrency: u64) -> anyhow::Result<()> {
    let receiver_rt = one_thread()?;
    let received = Arc::new(AtomicU64::new(0));
    let receiver = receiver_rt.block_on(bare_hyper(Arc::clone(&received)))?;
    let db = temp_db("dispatch");
    let rt = one_thread()?;
    let expected = events * webhooks;
    rt.block_on(async {
        let d = dispatcher_on(&db).await?;
        let client = reqwest::Client::builder().no_proxy().build()?;
        for w in 0..webhooks {
            let code = api_post(
                &client,
                format!("{}/v1/webhooks", d.url()),
                serde_json::json!({"target_url": format!("http://{receiver}/hook/{w}")}),
            )
            .await?;
            anyhow::ensure!(code == 201, "creating a webhook answered {code}");
        }
        let start = Instant::now();
        let next = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let (client, url, next) = (client.clone(), format!("{}/v1/events", d.url()), Arc::clone(&next));
            tasks.push(tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < events {
                    let code = api_post(&client, url.clone(), serde_json::json!({"event_type": "COURSE_COMPLETION"})).await?;
                    anyhow::ensure!(code == 202, "emit answered {code}");
                }
                Ok(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        let emitted = start.elapsed();
        let deadline = Instant::now() + Duration::from_secs(600);
        while received.load(Ordering::Relaxed) < expected {
            anyhow::ensure!(Instant::now() < deadline, "deliveries did not finish in 10 minutes");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let all = start.elapsed();
        println!("dispatch run: {events} events × {webhooks} webhooks = {expected} deliveries, {concurrency} concurrent emitters, SQLite file (WAL)");
        println!("  emit (stored, 202):   {:>8.0} events/s ({:.2} s)", events as f64 / emitted.as_secs_f64(), emitted.as_secs_f64());
        println!("  delivered end to end: {:>8.0} deliveries/s ({:.2} s until the receiver had all {expected})", expected as f64 / all.as_secs_f64(), all.as_secs_f64());
        d.shutdown().await;
        Ok::<_, anyhow::Error>(())
    })?;
    let _ = std::fs::remove_dir_all(db.parent().context("db dir")?);
    Ok(())
}

fn restart_run(pending: u64) -> anyhow::Result<()> {
    let receiver_rt = one_thread()?;
    let received = Arc::new(AtomicU64::new(0));
    let receiver = receiver_rt.block_on(bare_hyper(Arc::clone(&received)))?;
    let db = temp_db("restart");
    let rt = one_thread()?;
    rt.block_on(async {
        // Fill the store directly: one webhook, `pending` events each with a due delivery.
        let fill = Instant::now();
        let store = Store::open(&StoreConfig::File(db.clone()))?;
        let new = hookjar_core::NewWebhook::to(format!("http://{receiver}/hook"));
        store.create_webhook(new, 0).await?;
        let base = time::macros::datetime!(2026-11-27 00:00 UTC);
        for i in 0..pending {
            let at = base + time::Duration::microseconds(i as i64);
            let body = Event::fixture(EventType::LessonCompletion, at).to_payload();
            let n = store
                .emit(
                    NewEvent {
                        id: hookjar_core::webhook::webhook_id(i),
                        event_type: EventType::LessonCompletion,
                        body,
                    },
                    0,
                )
                .await?;
            anyhow::ensure!(n == 1);
        }
        drop(store);
        println!(
            "restart run: {pending} pending deliveries stored in {:.1} s",
            fill.elapsed().as_secs_f64()
        );
        let start = Instant::now();
        let d = dispatcher_on(&db).await?;
        let up = start.elapsed();
        while received.load(Ordering::Relaxed) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let first = start.elapsed();
        let deadline = Instant::now() + Duration::from_secs(900);
        while received.load(Ordering::Relaxed) < pending {
            anyhow::ensure!(Instant::now() < deadline, "not drained in 15 minutes");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let all = start.elapsed();
        println!(
            "  Dispatcher::start on the store: {:.3} s",
            up.as_secs_f64()
        );
        println!(
            "  first delivery received after:  {:.3} s",
            first.as_secs_f64()
        );
        println!(
            "  all {pending} delivered after:    {:.1} s ({:.0} deliveries/s)",
            all.as_secs_f64(),
            pending as f64 / all.as_secs_f64()
        );
        d.shutdown().await;
        Ok::<_, anyhow::Error>(())
    })?;
    let _ = std::fs::remove_dir_all(db.parent().context("db dir")?);
    Ok(())
}
