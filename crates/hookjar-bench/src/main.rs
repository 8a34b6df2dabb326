//! `hookjar-load`: the documented load runs of `docs/performance.md`.
//!
//! Every run talks to loopback only, is bounded in requests and time, and stops by
//! itself. Build in release: `cargo run --release -p hookjar-bench -- <run>`.
//!
//! - `mock` — requests/s of the `hookjar mock` binary (journal file on and off) and of
//!   the library's `MockReceiver` (journal file on) against a bare hyper server and
//!   wiremock-rs, alternating, under `wrk` pinned to the other core (server-bound), or
//!   under an in-process reqwest client (`--load reqwest`).
//! - `mock-memory` — the mock's resident memory after N distinct deliveries at full
//!   speed (wrk).
//! - `dispatch` — durable deliveries/s end to end: events emitted through the API,
//!   fanned out, stored in SQLite (a file, WAL), POSTed to a bare hyper receiver.
//! - `dispatch` also runs the no-storage ceiling first: the same reqwest client stack
//!   POSTing the same number of payloads to the same bare receiver at the dispatcher's
//!   delivery concurrency; it prints the dispatcher's fraction of it, and the latency
//!   of each `POST /v1/events` (p50, p99, max). Rounds alternate the two (`--rounds`,
//!   3 by default); it prints each round and min / median / max over them. Between
//!   the two it runs the relay bound: the same emits relayed to the receiver by a
//!   server doing only the HTTP work (no store, no scheduler), the most any
//!   dispatcher could reach with the same HTTP work.
//! - `lifecycle` — N webhooks whose receiver answers 503 forever, each living its
//!   whole 61-attempt life-cycle (~50 h) on tokio's paused clock: the wall time it takes.
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
    /// The `hookjar mock` binary (journal on and off) and the library's
    /// `MockReceiver` (journal on) vs a bare hyper server and wiremock-rs:
    /// requests/s, contenders alternating, min/median/max over the rounds.
    Mock {
        #[command(flatten)]
        run: MockRun,
        /// The hookjar binary run as the `hookjar mock` contenders (default: the
        /// release binary next to this one; `cargo build --release -p hookjar`).
        #[arg(long)]
        hookjar: Option<PathBuf>,
    },
    /// Resident memory of the mock receiver (journal file on) after N distinct
    /// deliveries sent by wrk at full speed.
    MockMemory {
        /// Distinct deliveries (each a payload with its own timestamp).
        #[arg(long, default_value_t = 1_000_000)]
        requests: u64,
        /// Requests the mock keeps in memory (its --keep).
        #[arg(long, default_value_t = hookjar_mock::DEFAULT_KEEP)]
        keep: usize,
        /// wrk: keep-alive connections.
        #[arg(long, default_value_t = 64)]
        connections: u64,
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
        /// Rounds (each runs the ceiling, the relay bound, then the dispatcher).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// The dispatcher's store: `file` (SQLite file, WAL: the documented figure) or
        /// `memory` (SQLite in memory: what the rest of the pipeline costs without
        /// durable storage).
        #[arg(long, value_enum, default_value_t = DispatchStore::File)]
        store: DispatchStore,
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
    /// N webhooks, one event, a receiver answering 503 forever: every delivery's whole
    /// 61-attempt life-cycle in virtual time (tokio's paused clock).
    Lifecycle {
        /// Webhooks (each its own URL, so one delivery each).
        #[arg(long, default_value_t = 1_000)]
        webhooks: u64,
        /// Rounds.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
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

/// How `hookjar-load mock` loads the servers.
/// `hookjar-load dispatch --store`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum DispatchStore {
    File,
    Memory,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Loader {
    /// wrk on core 1, the servers on core 0.
    Wrk,
    /// An in-process reqwest client on its own one-worker runtime.
    Reqwest,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.run {
        Run::Mock { run, hookjar } => {
            mock_run(run, &hookjar.unwrap_or_else(shared::default_hookjar))
        }
        Run::MockMemory {
            requests,
            keep,
            connections,
        } => mock_memory_run(requests, keep, connections),
        Run::Dispatch {
            events,
            webhooks,
            concurrency,
            rounds,
            store,
        } => dispatch_run(events, webhooks, concurrency, rounds, store),
        Run::Restart { pending } => restart_run(pending),
        Run::Lifecycle { webhooks, rounds } => lifecycle_run(webhooks, rounds),
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
            let rt = one_thread("bare")?;
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
fn one_thread(name: &str) -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        // Named so that `perf report --sort comm` splits a run by role.
        .thread_name(name)
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
    post_fixtures(url, total, concurrency, EventType::CourseEnrollment)
}

/// Sends `total` POSTs of distinct, valid `event_type` payloads (timestamps a
/// microsecond apart), as real deliveries are, from one reqwest client (rustls, as
/// the dispatcher's) with `concurrency` in flight on its own one-worker runtime;
/// returns requests/s.
fn post_fixtures(
    url: &str,
    total: u64,
    concurrency: u64,
    event_type: EventType,
) -> anyhow::Result<f64> {
    let rt = one_thread("load-client")?;
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .no_proxy()
            .build()?;
        let base = time::macros::datetime!(2026-11-27 00:00 UTC);
        let next = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let (client, url, next) = (client.clone(), url.to_owned(), Arc::clone(&next));
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return Ok::<_, reqwest::Error>(());
                    }
                    let at = base + time::Duration::microseconds(i as i64);
                    let body = Event::fixture(event_type, at).to_payload();
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
        Ok(total as f64 / start.elapsed().as_secs_f64())
    })
}

/// The settings of one `mock` run.
#[derive(Debug, Clone, Copy, clap::Args)]
struct MockRun {
    /// The load generator: `wrk` (server-bound: the servers on core 0, wrk on
    /// core 1; needs wrk and taskset) or `reqwest` (an in-process client).
    #[arg(long, value_enum, default_value_t = Loader::Wrk)]
    load: Loader,
    /// Rounds (each runs every contender once).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// wrk: seconds per contender and round.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// wrk: keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: u64,
    /// reqwest: requests per contender and round.
    #[arg(long, default_value_t = 40_000)]
    requests: u64,
    /// reqwest: concurrent keep-alive clients.
    #[arg(long, default_value_t = 32)]
    concurrency: u64,
}

/// wrk's script for the server-bound runs: one valid payload, Skilljar's headers.
const WRK_POST: &str = include_str!("../wrk/post.lua");
/// wrk's script for the memory run: a distinct payload per request, stops after N.
const WRK_DISTINCT: &str = include_str!("../wrk/distinct.lua");

/// Pins this process (every thread, and the threads it starts later) to `cpu`.
fn pin_self(cpu: u32) -> anyhow::Result<()> {
    let status = std::process::Command::new("taskset")
        .args([
            "-a",
            "-p",
            "-c",
            &cpu.to_string(),
            &std::process::id().to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .status()
        .context("cannot run taskset (install util-linux) to pin the servers to core 0")?;
    anyhow::ensure!(
        status.success(),
        "taskset could not pin this process to core {cpu}"
    );
    Ok(())
}

/// Writes a wrk script to a temporary file.
fn wrk_script(name: &str, text: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::temp_dir().join(format!("hookjar-load-{}-{name}", std::process::id()));
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Runs wrk pinned to core 1 against `url`; returns (requests/s, requests completed).
fn wrk(
    url: &str,
    script: &std::path::Path,
    connections: u64,
    seconds: u64,
) -> anyhow::Result<(f64, u64)> {
    let mut cmd = std::process::Command::new("taskset");
    cmd.args(["-c", "1", "wrk", "-t1"])
        .arg(format!("-c{connections}"))
        .arg(format!("-d{seconds}s"))
        .arg("-s")
        .arg(script)
        .arg(url);
    let out = cmd
        .output()
        .context("cannot run wrk (apt-get install wrk) pinned with taskset")?;
    let text = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rate = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .with_context(|| format!("no Requests/sec in wrk's output: {text}"))?;
    let done = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.trim().parse::<u64>().ok())
        .with_context(|| format!("no request count in wrk's output: {text}"))?;
    if text.contains("Non-2xx") || text.contains("Socket errors") {
        println!(
            "    note: wrk reported {}",
            text.lines()
                .filter(|l| l.contains("Non-2xx") || l.contains("Socket errors"))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    Ok((rate, done))
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

fn min_med_max(v: &[f64]) -> String {
    let min = v.iter().cloned().fold(f64::INFINITY, f64::min);
    let max = v.iter().cloned().fold(0.0, f64::max);
    format!("{min:>9.0} {:>9.0} {max:>9.0}", median(v))
}

/// A `hookjar mock` process (the binary users run), pinned like this process;
/// SIGKILLed when dropped.
struct MockProcess {
    child: std::process::Child,
    url: String,
}

impl MockProcess {
    fn start(hookjar: &std::path::Path, extra: &[&str]) -> anyhow::Result<MockProcess> {
        use std::io::BufRead as _;
        let mut child = std::process::Command::new(hookjar)
            .args(["mock", "--addr", "127.0.0.1:0", "--quiet", "--no-ui"])
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .with_context(|| {
                format!(
                    "cannot run {} (build it: cargo build --release -p hookjar, or pass --hookjar)",
                    hookjar.display()
                )
            })?;
        let mut out = std::io::BufReader::new(child.stdout.take().context("stdout")?);
        let url = loop {
            let mut line = String::new();
            anyhow::ensure!(
                out.read_line(&mut line)? > 0,
                "hookjar mock exited: {:?}",
                child.wait()
            );
            if let Some(url) = line.trim().strip_prefix("hookjar mock listening on ") {
                break url.to_owned();
            }
        };
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        Ok(MockProcess { child, url })
    }
}

impl Drop for MockProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mock_run(run: MockRun, hookjar: &std::path::Path) -> anyhow::Result<()> {
    if run.load == Loader::Wrk {
        // Pins this process and, through inheritance, the `hookjar mock` processes.
        pin_self(0)?;
    }
    let server_rt = one_thread("mock-server")?;
    let bare_count = Arc::new(AtomicU64::new(0));
    let bare = server_rt.block_on(bare_hyper(Arc::clone(&bare_count)))?;
    let wiremock = server_rt.block_on(async {
        let server = wiremock::MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::method("POST"))
            .respond_with(wiremock::ResponseTemplate::new(200))
            .mount(&server)
            .await;
        server
    });
    let tmp = std::env::temp_dir();
    let pid = std::process::id();
    let journal = tmp.join(format!("hookjar-load-{pid}.jsonl"));
    let lib_journal = tmp.join(format!("hookjar-load-{pid}-lib.jsonl"));
    for j in [&journal, &lib_journal] {
        let _ = std::fs::remove_file(j);
    }
    let journal_arg = journal.to_string_lossy().into_owned();
    let binary = MockProcess::start(hookjar, &["--journal", &journal_arg])?;
    let binary_plain = MockProcess::start(hookjar, &[])?;
    let library = server_rt.block_on(
        hookjar_mock::MockReceiver::builder()
            .journal_file(&lib_journal)
            .start(),
    )?;
    // The binary with its journal is the contender the targets name (issue #10).
    const JOURNAL: usize = 2;
    const LIB_JOURNAL: usize = 4;
    let contenders = [
        ("bare hyper", format!("http://{bare}/hook")),
        ("wiremock-rs 0.6", format!("{}/hook", wiremock.uri())),
        ("hookjar mock --journal", format!("{}/hook", binary.url)),
        (
            "hookjar mock (no journal)",
            format!("{}/hook", binary_plain.url),
        ),
        (
            "library MockReceiver +journal",
            format!("{}/hook", library.url()),
        ),
    ];
    let script = wrk_script("post.lua", WRK_POST)?;
    let measure = |url: &str, warm: bool| -> anyhow::Result<(f64, u64)> {
        match run.load {
            Loader::Wrk => wrk(
                url,
                &script,
                run.connections,
                if warm { 1 } else { run.seconds },
            ),
            Loader::Reqwest => {
                let n = if warm { 2_000 } else { run.requests };
                Ok((load(url, n, run.concurrency)?, n))
            }
        }
    };
    let mut answered = vec![0u64; contenders.len()];
    for (i, (_, url)) in contenders.iter().enumerate() {
        answered[i] += measure(url, true)?.1;
    }
    let mut rates = vec![Vec::new(); contenders.len()];
    for round in 0..run.rounds {
        for (i, (name, url)) in contenders.iter().enumerate() {
            let (rate, done) = measure(url, false)?;
            println!("  round {} {name:<30} {rate:>9.0} req/s", round + 1);
            rates[i].push(rate);
            answered[i] += done;
        }
    }
    let lines = |path: &std::path::Path| -> anyhow::Result<u64> {
        let file = std::fs::File::open(path)
            .with_context(|| format!("cannot open the journal {}", path.display()))?;
        Ok(std::io::BufRead::lines(std::io::BufReader::new(file)).count() as u64)
    };
    drop(binary);
    let journaled = lines(&journal)?;
    let lib_journaled = lines(&lib_journal)?;
    match run.load {
        Loader::Wrk => println!(
            "mock run: wrk -t1 -c{} -d{}s (core 1, crates/hookjar-bench/wrk/post.lua), servers on core 0, {} rounds, contenders alternating",
            run.connections, run.seconds, run.rounds
        ),
        Loader::Reqwest => println!(
            "mock run: reqwest, {} requests × {} rounds per server, {} concurrent keep-alive clients",
            run.requests, run.rounds, run.concurrency
        ),
    }
    println!(
        "  {:<30} {:>9} {:>9} {:>9}   (req/s)",
        "server", "min", "median", "max"
    );
    for (i, (name, _)) in contenders.iter().enumerate() {
        println!("  {name:<30} {}", min_med_max(&rates[i]));
    }
    let m: Vec<f64> = rates.iter().map(|r| median(r)).collect();
    println!(
        "  hookjar mock --journal / bare hyper:  {:.2} (target ≥ 0.8)",
        m[JOURNAL] / m[0]
    );
    println!(
        "  hookjar mock --journal / wiremock-rs: {:.2} (target ≥ 2)",
        m[JOURNAL] / m[1]
    );
    println!(
        "  hookjar mock (no journal) / bare hyper: {:.2}; / wiremock-rs: {:.2}",
        m[3] / m[0],
        m[3] / m[1]
    );
    println!(
        "  library MockReceiver + journal / bare hyper: {:.2}; / wiremock-rs: {:.2}",
        m[LIB_JOURNAL] / m[0],
        m[LIB_JOURNAL] / m[1]
    );
    println!("  wiremock-rs / bare hyper: {:.2}", m[1] / m[0]);
    println!(
        "  journal lines: hookjar mock --journal {journaled} for {} requests answered; library {lib_journaled} for {}",
        answered[JOURNAL], answered[LIB_JOURNAL]
    );
    anyhow::ensure!(
        journaled >= answered[JOURNAL] && lib_journaled >= answered[LIB_JOURNAL],
        "the journal lost requests: every answered request must have its line"
    );
    let _ = std::fs::remove_file(&journal);
    let _ = std::fs::remove_file(&lib_journal);
    let _ = std::fs::remove_file(&script);
    Ok(())
}

/// `VmRSS` and `VmHWM` of this process, in kB.
fn rss_kb() -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .with_context(|| format!("no {name} in /proc/self/status"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

fn mock_memory_run(requests: u64, keep: usize, connections: u64) -> anyhow::Result<()> {
    pin_self(0)?;
    let server_rt = one_thread("mock-server")?;
    let journal =
        std::env::temp_dir().join(format!("hookjar-load-{}-memory.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&journal);
    let mock = server_rt.block_on(
        hookjar_mock::MockReceiver::builder()
            .journal_file(&journal)
            .keep(keep)
            .start(),
    )?;
    let (rss0, _) = rss_kb()?;
    let script = wrk_script("distinct.lua", WRK_DISTINCT)?;
    let start = Instant::now();
    // wrk runs until the mock has received `requests`, then is stopped (wrk's own -d
    // would keep it running).
    let mut child = std::process::Command::new("taskset")
        .args(["-c", "1", "wrk", "-t1"])
        .arg(format!("-c{connections}"))
        .args(["-d3600s", "-s"])
        .arg(&script)
        .arg(format!("{}/hook", mock.url()))
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("cannot run wrk (apt-get install wrk) pinned with taskset")?;
    let mut samples = Vec::new();
    let mut next_sample = 0;
    loop {
        let received = mock.counts().received;
        if received >= next_sample || received >= requests {
            samples.push((received, start.elapsed(), rss_kb()?.0));
            next_sample += requests / 10;
        }
        if received >= requests {
            break;
        }
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("wrk ended early ({status})");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = start.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    let (rss, hwm) = rss_kb()?;
    let counts = mock.counts();
    let deliveries = mock.deliveries().len();
    let journaled =
        std::io::BufRead::lines(std::io::BufReader::new(std::fs::File::open(&journal)?)).count();
    println!(
        "mock-memory run: {requests} distinct deliveries by wrk -t1 -c{connections} (core 1, crates/hookjar-bench/wrk/distinct.lua), mock on core 0, keep {keep}, journal file on"
    );
    println!(
        "  received {} in {:.1} s ({:.0} req/s)",
        counts.received,
        took.as_secs_f64(),
        counts.received as f64 / took.as_secs_f64()
    );
    println!("  received, seconds, resident MB along the way:");
    let mut prev: Option<(u64, Duration)> = None;
    for (n, at, kb) in &samples {
        let rate = prev
            .map(|(pn, pat)| (n - pn) as f64 / (*at - pat).as_secs_f64().max(1e-9))
            .map(|r| format!("  ({r:.0} req/s since the line above)"))
            .unwrap_or_default();
        println!(
            "    {n:>9} {:>7.1} s {:>7.1} MB{rate}",
            at.as_secs_f64(),
            *kb as f64 / 1024.0
        );
        prev = Some((*n, *at));
    }
    println!(
        "  kept {}, evicted {} (deliveries in memory: {deliveries}); journal lines {journaled} (wrk was stopped with requests in flight)",
        counts.kept, counts.evicted
    );
    println!(
        "  resident: {:.1} MB at start, {:.1} MB at the end, peak {:.1} MB (target ≤ 100 MB)",
        rss0 as f64 / 1024.0,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    let _ = std::fs::remove_file(&journal);
    let _ = std::fs::remove_file(&script);
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
    dispatcher_with(StoreConfig::File(db.to_owned())).await
}

async fn dispatcher_with(store: StoreConfig) -> anyhow::Result<Dispatcher> {
    Ok(Dispatcher::start(
        Config {
            api_key: "k".into(),
            store,
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

/// The no-storage ceiling: `total` POSTs of fixture payloads from one reqwest client
/// (rustls, as the dispatcher's) with `concurrency` in flight, to `url`. Returns
/// requests/s.
fn ceiling(url: &str, total: u64, concurrency: u64) -> anyhow::Result<f64> {
    post_fixtures(url, total, concurrency, EventType::CourseCompletion)
}

/// One round of `hookjar-load dispatch`.
struct DispatchRound {
    /// The ceiling's POSTs/s.
    ceiling: f64,
    /// Its CPU time (user + system, this whole process) per POST, in µs.
    ceiling_cpu_us: f64,
    /// The relay bound's deliveries/s ([`Relay`]: the same emits and POSTs, nothing
    /// else).
    relay: f64,
    /// The relay's CPU time per delivery, in µs.
    relay_cpu_us: f64,
    /// The dispatcher's emits and deliveries.
    dispatcher: EmitRun,
    /// Its CPU time (emitters, dispatcher, receiver) per delivery, in µs.
    cpu_us: f64,
}

/// What one run of emits measured ([`emit_and_wait`]).
struct EmitRun {
    emits_per_s: f64,
    deliveries_per_s: f64,
    /// Each `POST /v1/events`' latency, sorted.
    emit_latencies: Vec<Duration>,
}

/// CPU time (user + system) this process has used so far, in seconds, from
/// `/proc/self/stat` (clock ticks of 10 ms: phases here last ≥ 0.3 s).
fn cpu_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("cannot read /proc/self/stat")?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat
        .rsplit_once(')')
        .context("no ')' in /proc/self/stat")?
        .1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after ')'.
    let ticks: f64 = fields
        .get(11..13)
        .context("short /proc/self/stat")?
        .iter()
        .map(|f| f.parse::<f64>())
        .sum::<Result<f64, _>>()?;
    Ok(ticks / 100.0)
}

impl DispatchRound {
    fn ratio(&self) -> f64 {
        self.dispatcher.deliveries_per_s / self.ceiling
    }

    fn relay_ratio(&self) -> f64 {
        self.relay / self.ceiling
    }

    /// The `q` quantile (0..=1) of the emit latencies, in ms.
    fn emit_ms(&self, q: f64) -> f64 {
        let l = &self.dispatcher.emit_latencies;
        let at = ((l.len() as f64 * q).ceil() as usize).clamp(1, l.len()) - 1;
        l[at].as_secs_f64() * 1000.0
    }
}

/// What one dispatch round emits: `events` events to `webhooks` webhooks, from
/// `concurrency` clients.
#[derive(Debug, Clone, Copy)]
struct Emits {
    events: u64,
    webhooks: u64,
    concurrency: u64,
}

/// Runs `phase`; returns what it returned and the CPU seconds this process used
/// meanwhile.
fn with_cpu<T>(phase: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<(T, f64)> {
    let cpu = cpu_seconds()?;
    let out = phase()?;
    Ok((out, cpu_seconds()? - cpu))
}

/// `rounds` rounds, each the no-storage ceiling, the relay bound and the dispatcher,
/// back to back on the same receiver; prints each round and min / median / max of
/// every figure.
fn dispatch_run(
    events: u64,
    webhooks: u64,
    concurrency: u64,
    rounds: usize,
    store: DispatchStore,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        rounds > 0 && events > 0 && webhooks > 0,
        "--rounds, --events and --webhooks must be at least 1"
    );
    let receiver_rt = one_thread("receiver")?;
    let received = Arc::new(AtomicU64::new(0));
    let receiver = receiver_rt.block_on(bare_hyper(Arc::clone(&received)))?;
    let expected = events * webhooks;
    let emits = Emits {
        events,
        webhooks,
        concurrency,
    };
    let delivery_concurrency = Config::default().concurrency as u64;
    println!(
        "dispatch run: {events} events × {webhooks} webhooks = {expected} deliveries, {concurrency} concurrent emitters, {}, {rounds} rounds",
        match store {
            DispatchStore::File => "SQLite file (WAL)",
            DispatchStore::Memory => "SQLite in memory (no durable storage)",
        }
    );
    println!(
        "  ceiling: one reqwest client (rustls), {delivery_concurrency} in flight, POSTing {expected} fixture payloads to the same bare receiver"
    );
    let mut all = Vec::new();
    for round in 1..=rounds {
        let (ceiling_rate, ceiling_cpu) = with_cpu(|| {
            ceiling(
                &format!("http://{receiver}/hook/ceiling"),
                expected,
                delivery_concurrency,
            )
        })?;
        received.store(0, Ordering::Relaxed);
        let (relay, relay_cpu) = with_cpu(|| relay_round(receiver, &received, emits))?;
        received.store(0, Ordering::Relaxed);
        let (dispatcher, cpu) = with_cpu(|| dispatch_round(receiver, &received, emits, store))?;
        let per = |seconds: f64| seconds * 1e6 / expected as f64;
        let r = DispatchRound {
            ceiling: ceiling_rate,
            ceiling_cpu_us: per(ceiling_cpu),
            relay: relay.deliveries_per_s,
            relay_cpu_us: per(relay_cpu),
            dispatcher,
            cpu_us: per(cpu),
        };
        println!(
            "  round {round}: ceiling {:>6.0} POSTs/s; relay bound {:>6.0} deliveries/s ({:.2} of the ceiling); emit {:>6.0} events/s; delivered {:>6.0} deliveries/s; ratio {:.2}; emit latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; CPU per delivery {:.0} µs (ceiling {:.0} µs per POST, relay {:.0} µs per delivery)",
            r.ceiling,
            r.relay,
            r.relay_ratio(),
            r.dispatcher.emits_per_s,
            r.dispatcher.deliveries_per_s,
            r.ratio(),
            r.emit_ms(0.5),
            r.emit_ms(0.99),
            r.emit_ms(1.0),
            r.cpu_us,
            r.ceiling_cpu_us,
            r.relay_cpu_us,
        );
        all.push(r);
    }
    let row = |name: &str, f: &dyn Fn(&DispatchRound) -> f64, digits: usize| {
        let (min, med, max) = spread(all.iter().map(f).collect());
        println!("  {name:<28} {min:>9.digits$} {med:>9.digits$} {max:>9.digits$}");
    };
    println!(
        "  {:<28} {:>9} {:>9} {:>9}",
        "over the rounds", "min", "median", "max"
    );
    row("ceiling (POSTs/s)", &|r| r.ceiling, 0);
    row("relay bound (deliveries/s)", &|r| r.relay, 0);
    row("relay bound / ceiling", &DispatchRound::relay_ratio, 2);
    row("emit (events/s, 202)", &|r| r.dispatcher.emits_per_s, 0);
    row(
        "delivered (deliveries/s)",
        &|r| r.dispatcher.deliveries_per_s,
        0,
    );
    row("dispatcher / ceiling", &DispatchRound::ratio, 2);
    row("emit latency p50 (ms)", &|r| r.emit_ms(0.5), 2);
    row("emit latency p99 (ms)", &|r| r.emit_ms(0.99), 2);
    row("emit latency max (ms)", &|r| r.emit_ms(1.0), 2);
    row("CPU µs per delivery", &|r| r.cpu_us, 0);
    row("ceiling: CPU µs per POST", &|r| r.ceiling_cpu_us, 0);
    row("relay: CPU µs per delivery", &|r| r.relay_cpu_us, 0);
    println!("  targets: dispatcher / ceiling ≥ 0.5; emit p99 ≤ 10 ms at 16 concurrent clients");
    Ok(())
}

/// Min, median and max of `v` (not empty).
fn spread(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[0], v[v.len() / 2], v[v.len() - 1])
}

/// The dispatcher on a fresh SQLite file: `webhooks` webhooks on the receiver, then
/// `events` emits from `concurrency` clients; the clock stops when the receiver has
/// every delivery.
fn dispatch_round(
    receiver: SocketAddr,
    received: &AtomicU64,
    emits: Emits,
    store: DispatchStore,
) -> anyhow::Result<EmitRun> {
    let db = temp_db("dispatch");
    // The dispatcher runs on the runtime `hookjar serve` builds (tokio's default: a
    // worker per core); the emitting clients on their own one-worker runtime, as the
    // ceiling's client.
    let dispatcher_rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("dispatcher")
        .enable_all()
        .build()?;
    let d = dispatcher_rt.block_on(dispatcher_with(match store {
        DispatchStore::File => StoreConfig::File(db.clone()),
        DispatchStore::Memory => StoreConfig::InMemory,
    }))?;
    let rt = one_thread("emitters")?;
    let round = rt.block_on(async {
        let client = reqwest::Client::builder().no_proxy().build()?;
        for w in 0..emits.webhooks {
            let code = api_post(
                &client,
                format!("{}/v1/webhooks", d.url()),
                serde_json::json!({"target_url": format!("http://{receiver}/hook/{w}")}),
            )
            .await?;
            anyhow::ensure!(code == 201, "creating a webhook answered {code}");
        }
        emit_and_wait(
            &client,
            &format!("{}/v1/events", d.url()),
            received,
            None,
            emits,
        )
        .await
    });
    dispatcher_rt.block_on(d.shutdown());
    let round = round?;
    let _ = std::fs::remove_dir_all(db.parent().context("db dir")?);
    Ok(round)
}

/// The emits (`POST {emit_url}`, `COURSE_COMPLETION`, each expecting 202); the
/// clock stops when the receiver has counted every delivery (events × webhooks).
async fn emit_and_wait(
    client: &reqwest::Client,
    emit_url: &str,
    received: &AtomicU64,
    failed: Option<&AtomicU64>,
    emits: Emits,
) -> anyhow::Result<EmitRun> {
    let Emits {
        events,
        webhooks,
        concurrency,
    } = emits;
    let expected = events * webhooks;
    let start = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, next) = (client.clone(), emit_url.to_owned(), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < events {
                let sent = Instant::now();
                let code = api_post(
                    &client,
                    url.clone(),
                    serde_json::json!({"event_type": "COURSE_COMPLETION"}),
                )
                .await?;
                latencies.push(sent.elapsed());
                anyhow::ensure!(code == 202, "emit answered {code}");
            }
            Ok(latencies)
        }));
    }
    let mut emit_latencies = Vec::with_capacity(events as usize);
    for t in tasks {
        emit_latencies.extend(t.await??);
    }
    emit_latencies.sort();
    let emitted = start.elapsed();
    wait_received(received, failed, expected, "the deliveries").await?;
    let all = start.elapsed();
    Ok(EmitRun {
        emits_per_s: events as f64 / emitted.as_secs_f64(),
        deliveries_per_s: expected as f64 / all.as_secs_f64(),
        emit_latencies,
    })
}

/// Waits until `received` reaches `want`; fails after 10 minutes, or as soon as
/// `failed` (sends that will never arrive) is above 0, naming `what`.
async fn wait_received(
    received: &AtomicU64,
    failed: Option<&AtomicU64>,
    want: u64,
    what: &str,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    while received.load(Ordering::Relaxed) < want {
        if let Some(n) = failed.map(|f| f.load(Ordering::Relaxed)).filter(|&n| n > 0) {
            anyhow::bail!("{what}: {n} POSTs got no answer from the receiver");
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{what}: not all delivered in 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

/// The relay bound: a "dispatcher" with nothing but its HTTP work, on the runtime
/// `hookjar serve` builds. It answers each `POST /v1/events` 202 as soon as it has
/// read the body and built the payload (as the API does, minus storing), and POSTs
/// the payload to each target with the dispatcher's client stack (reqwest, rustls,
/// no redirects, its timeout) and in-flight limits (in all, and per webhook). No
/// store, no scheduler, no retries, no records: what any dispatcher would reach if
/// all of those were free.
struct Relay {
    client: reqwest::Client,
    /// Each target with its own in-flight permits.
    targets: Vec<(String, Arc<tokio::sync::Semaphore>)>,
    /// In-flight permits in all.
    permits: Arc<tokio::sync::Semaphore>,
    /// POSTs that got no answer (the round fails at once rather than wait for them).
    failed: AtomicU64,
}

/// Starts a [`Relay`] to `targets`; returns its runtime (dropping it stops the
/// relay), its address and the relay itself (for its failure count).
fn start_relay(
    targets: Vec<String>,
) -> anyhow::Result<(tokio::runtime::Runtime, SocketAddr, Arc<Relay>)> {
    let config = Config::default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("relay")
        .enable_all()
        .build()?;
    let per_target = config.per_webhook_concurrency.min(config.concurrency);
    let relay = Arc::new(Relay {
        client: reqwest::Client::builder()
            .use_rustls_tls()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .no_proxy()
            .build()?,
        targets: targets
            .into_iter()
            .map(|t| (t, Arc::new(tokio::sync::Semaphore::new(per_target))))
            .collect(),
        permits: Arc::new(tokio::sync::Semaphore::new(config.concurrency)),
        failed: AtomicU64::new(0),
    });
    let addr = rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let serving = Arc::clone(&relay);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let relay = Arc::clone(&serving);
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let relay = Arc::clone(&relay);
                        async move { Ok::<_, Infallible>(relay_emit(req, &relay).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok::<_, anyhow::Error>(addr)
    })?;
    Ok((rt, addr, relay))
}

/// One emit at the relay: 401 without credentials, 400 for a body that is not an
/// event, else 202 and one POST per target in the background.
async fn relay_emit(
    req: hyper::Request<hyper::body::Incoming>,
    relay: &Arc<Relay>,
) -> hyper::Response<Full<Bytes>> {
    let answer = |code: u16, body: &'static [u8]| {
        let mut res = hyper::Response::new(Full::new(Bytes::from_static(body)));
        *res.status_mut() = hyper::StatusCode::from_u16(code).expect("a valid status");
        res
    };
    if !req.headers().contains_key(hyper::header::AUTHORIZATION) {
        return answer(401, b"{\"detail\":\"no credentials\"}");
    }
    let Ok(body) = req.into_body().collect().await else {
        return answer(400, b"{\"detail\":\"body not received\"}");
    };
    let event_type = serde_json::from_slice::<serde_json::Value>(&body.to_bytes())
        .ok()
        .and_then(|v| v.get("event_type")?.as_str()?.parse::<EventType>().ok());
    let Some(event_type) = event_type else {
        return answer(400, b"{\"detail\":\"not an event\"}");
    };
    let payload = Event::fixture(event_type, time::OffsetDateTime::now_utc()).to_payload();
    for at in 0..relay.targets.len() {
        let (relay, bytes) = (Arc::clone(relay), payload.bytes().clone());
        tokio::spawn(async move {
            let (target, own) = &relay.targets[at];
            let (Ok(_own), Ok(_all)) = (
                Arc::clone(own).acquire_owned().await,
                Arc::clone(&relay.permits).acquire_owned().await,
            ) else {
                return;
            };
            let sent = relay
                .client
                .post(target)
                .header("content-type", "application/json")
                .header("user-agent", "skilljar")
                .body(bytes)
                .send()
                .await;
            let answered = match sent {
                Ok(resp) => resp.bytes().await.is_ok(),
                Err(_) => false,
            };
            if !answered {
                relay.failed.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    answer(202, b"{\"status\":\"accepted\"}")
}

/// The relay bound for one round: a [`Relay`] with one target per webhook on the
/// receiver, then the same emits as the dispatcher's.
fn relay_round(
    receiver: SocketAddr,
    received: &AtomicU64,
    emits: Emits,
) -> anyhow::Result<EmitRun> {
    let targets = (0..emits.webhooks)
        .map(|w| format!("http://{receiver}/hook/relay{w}"))
        .collect();
    let (relay_rt, addr, relay) = start_relay(targets)?;
    let rt = one_thread("emitters")?;
    let round = rt.block_on(async {
        let client = reqwest::Client::builder().no_proxy().build()?;
        emit_and_wait(
            &client,
            &format!("http://{addr}/v1/events"),
            received,
            Some(&relay.failed),
            emits,
        )
        .await
    });
    relay_rt.shutdown_background();
    round
}

fn lifecycle_run(webhooks: u64, rounds: usize) -> anyhow::Result<()> {
    let mut walls = Vec::new();
    for round in 0..rounds {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()?;
        let (wall, virtual_time, received) = rt.block_on(async {
            let started = Instant::now();
            let virtual_start = tokio::time::Instant::now();
            let mock = hookjar_mock::MockReceiver::builder()
                .script("503")?
                .keep(0)
                .start()
                .await?;
            let d = Dispatcher::start(
                Config {
                    api_key: "k".into(),
                    store: StoreConfig::InMemory,
                    ..Config::default()
                },
                "127.0.0.1:0",
            )
            .await?;
            let client = reqwest::Client::builder().no_proxy().build()?;
            for w in 0..webhooks {
                let code = api_post(
                    &client,
                    format!("{}/v1/webhooks", d.url()),
                    serde_json::json!({"target_url": format!("{}/hook/{w}", mock.url())}),
                )
                .await?;
                anyhow::ensure!(code == 201, "creating a webhook answered {code}");
            }
            let code = api_post(
                &client,
                format!("{}/v1/events", d.url()),
                serde_json::json!({"event_type": "COURSE_COMPLETION"}),
            )
            .await?;
            anyhow::ensure!(code == 202, "emit answered {code}");
            let attempts = webhooks * 61;
            let mut latest = mock.subscribe();
            // Virtual time: this bound is 100 days of it, not of the wall clock.
            tokio::time::timeout(
                Duration::from_secs(100 * 86_400),
                latest.wait_for(|_| mock.counts().received >= attempts),
            )
            .await
            .context("the life-cycles did not end in 100 virtual days")??;
            let virtual_time = virtual_start.elapsed();
            let received = mock.counts().received;
            d.shutdown().await;
            Ok::<_, anyhow::Error>((started.elapsed(), virtual_time, received))
        })?;
        println!(
            "  round {}: {received} POSTs over {:.1} h of virtual time in {:.2} s of wall time",
            round + 1,
            virtual_time.as_secs_f64() / 3600.0,
            wall.as_secs_f64()
        );
        walls.push(wall.as_secs_f64());
    }
    println!(
        "lifecycle run: {webhooks} webhooks × 61 attempts (receiver: 503 forever), tokio's paused clock, in-memory store"
    );
    println!("  wall time (s): min/median/max {}", min_med_max_f(&walls));
    Ok(())
}

fn min_med_max_f(v: &[f64]) -> String {
    let min = v.iter().cloned().fold(f64::INFINITY, f64::min);
    let max = v.iter().cloned().fold(0.0, f64::max);
    format!("{min:.2} / {:.2} / {max:.2}", median(v))
}

fn restart_run(pending: u64) -> anyhow::Result<()> {
    let receiver_rt = one_thread("receiver")?;
    let received = Arc::new(AtomicU64::new(0));
    let receiver = receiver_rt.block_on(bare_hyper(Arc::clone(&received)))?;
    let db = temp_db("restart");
    let rt = one_thread("store-fill")?;
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
