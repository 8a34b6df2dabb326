//! The PostgreSQL load runs (issue #12), with real `hookjar serve` processes:
//!
//! - `shared` — durable deliveries/s end to end, SQLite file vs PostgreSQL with one
//!   and with two processes, the same load, several rounds.
//! - `shared-kill` — `kill -9` of one of two processes halfway through a run: every
//!   accepted event delivered to every URL? duplicates?
//! - `shared-restart` — a PostgreSQL store holding N pending deliveries: time from
//!   starting a process to its first delivery.
//!
//! PostgreSQL is a throw-away cluster (`hookjar_dispatch::pgtemp`) with `fsync` on
//! (durable, as in production) for `shared` and `shared-kill`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use hookjar_core::{Event, EventType};
use hookjar_dispatch::pgtemp::TempCluster;
use hookjar_dispatch::store::{NewEvent, PgConfig, Store, StoreConfig};
use http_body_util::{BodyExt as _, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// What the receiver saw: POSTs per `(path, seq)`.
type Seen = Arc<Mutex<HashMap<(String, u64), u32>>>;

/// A hyper receiver answering 200 that counts POSTs per path and event `"seq"`.
async fn counting_receiver() -> anyhow::Result<(SocketAddr, Seen, Arc<AtomicU64>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let seen: Seen = Arc::default();
    let total = Arc::new(AtomicU64::new(0));
    let (s, t) = (Arc::clone(&seen), Arc::clone(&total));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (seen, total) = (Arc::clone(&s), Arc::clone(&t));
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (seen, total) = (Arc::clone(&seen), Arc::clone(&total));
                    async move {
                        let path = req.uri().path().to_owned();
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let seq = serde_json::from_slice::<serde_json::Value>(&body)
                            .ok()
                            .and_then(|v| v.get("seq").and_then(|n| n.as_u64()));
                        if let Some(seq) = seq {
                            *seen.lock().unwrap().entry((path, seq)).or_insert(0) += 1;
                        }
                        total.fetch_add(1, Ordering::Relaxed);
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
    Ok((addr, seen, total))
}

/// A `hookjar serve` process; SIGKILLed when dropped.
struct Serve {
    child: Child,
    url: String,
}

impl Serve {
    fn start(hookjar: &Path, db: &str, extra: &[&str]) -> anyhow::Result<Serve> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut child = Command::new(hookjar)
            .args(["serve", "--db", db, "--api-key", "k"])
            .args(["--addr", &format!("127.0.0.1:{port}")])
            .args(extra)
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot run {}", hookjar.display()))?;
        let mut out = BufReader::new(child.stdout.take().context("stdout")?);
        loop {
            let mut line = String::new();
            anyhow::ensure!(
                out.read_line(&mut line)? > 0,
                "hookjar serve exited: {:?}",
                child.wait()
            );
            if line.starts_with("Press Ctrl-C") {
                break;
            }
        }
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        Ok(Serve {
            child,
            url: format!("http://127.0.0.1:{port}"),
        })
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn post(
    client: &reqwest::Client,
    url: String,
    body: serde_json::Value,
) -> anyhow::Result<u16> {
    Ok(client
        .post(url)
        .basic_auth("k", Some(""))
        .json(&body)
        .send()
        .await?
        .status()
        .as_u16())
}

/// Creates `webhooks` webhooks on `receiver` through `server`.
async fn webhooks(
    client: &reqwest::Client,
    server: &str,
    receiver: SocketAddr,
    webhooks: u64,
) -> anyhow::Result<()> {
    for w in 0..webhooks {
        let code = post(
            client,
            format!("{server}/v1/webhooks"),
            serde_json::json!({"target_url": format!("http://{receiver}/hook/{w}")}),
        )
        .await?;
        anyhow::ensure!(code == 201, "creating a webhook answered {code}");
    }
    Ok(())
}

/// Emits events `from..to` (their `"seq"`) with `concurrency` emitters, spread over
/// `servers` round-robin.
async fn emit(
    client: &reqwest::Client,
    servers: &[String],
    from: u64,
    to: u64,
    concurrency: u64,
) -> anyhow::Result<()> {
    let next = Arc::new(AtomicU64::new(from));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, servers, next) = (client.clone(), servers.to_vec(), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            loop {
                let seq = next.fetch_add(1, Ordering::Relaxed);
                if seq >= to {
                    return Ok::<_, anyhow::Error>(());
                }
                let server = &servers[seq as usize % servers.len()];
                let code = post(
                    &client,
                    format!("{server}/v1/events"),
                    serde_json::json!({"event_type": "COURSE_COMPLETION", "seq": seq}),
                )
                .await?;
                anyhow::ensure!(code == 202, "emit answered {code}");
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?)
}

fn stats(v: &[f64]) -> String {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    format!(
        "min {:>6.0}  median {:>6.0}  max {:>6.0}  (rounds: {:.0?})",
        s[0],
        s[s.len() / 2],
        s[s.len() - 1],
        v
    )
}

/// `shared`: deliveries/s, SQLite vs PostgreSQL ×1 vs ×2, `rounds` rounds each.
pub fn throughput(
    hookjar: &Path,
    events: u64,
    hooks: u64,
    concurrency: u64,
    rounds: u32,
) -> anyhow::Result<()> {
    let cluster = TempCluster::start(true)?;
    let rt = runtime()?;
    let dir = std::env::temp_dir().join(format!("hookjar-load-shared-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut rates: [Vec<f64>; 3] = Default::default();
    for round in 0..rounds {
        for (k, label) in ["sqlite", "postgres x1", "postgres x2"].iter().enumerate() {
            let (db, processes) = match k {
                0 => (dir.join(format!("r{round}.db")).display().to_string(), 1),
                1 => (cluster.database()?, 1),
                _ => (cluster.database()?, 2),
            };
            let servers = (0..processes)
                .map(|_| Serve::start(hookjar, &db, &[]))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let urls: Vec<String> = servers.iter().map(|s| s.url.clone()).collect();
            let rate = rt.block_on(async {
                let (receiver, _, total) = counting_receiver().await?;
                let client = reqwest::Client::builder().no_proxy().build()?;
                webhooks(&client, &urls[0], receiver, hooks).await?;
                let start = Instant::now();
                emit(&client, &urls, 0, events, concurrency).await?;
                let want = events * hooks;
                crate::wait_received(&total, None, want, label).await?;
                Ok::<_, anyhow::Error>(want as f64 / start.elapsed().as_secs_f64())
            })?;
            println!("  round {} {label:<12} {rate:>6.0} deliveries/s", round + 1);
            rates[k].push(rate);
            drop(servers);
        }
    }
    println!(
        "shared run: {events} events × {hooks} webhooks = {} deliveries per run, {concurrency} concurrent emitters spread over the processes, hookjar serve processes, PostgreSQL 15 with fsync on",
        events * hooks
    );
    for (k, label) in [
        "SQLite file (WAL)",
        "PostgreSQL, 1 process",
        "PostgreSQL, 2 processes",
    ]
    .iter()
    .enumerate()
    {
        println!("  {label:<24} {}", stats(&rates[k]));
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// `shared-kill`: two processes, `kill -9` of the second once half the events are
/// accepted; waits until every pair arrived and the store holds nothing unfinished.
pub fn kill(
    hookjar: &Path,
    events: u64,
    hooks: u64,
    concurrency: u64,
    lease: &str,
) -> anyhow::Result<()> {
    let cluster = TempCluster::start(true)?;
    let db = cluster.database()?;
    let rt = runtime()?;
    let a = Serve::start(hookjar, &db, &["--lease", lease])?;
    let mut b = Some(Serve::start(hookjar, &db, &["--lease", lease])?);
    let urls = vec![
        a.url.clone(),
        b.as_ref().map(|b| b.url.clone()).unwrap_or_default(),
    ];
    rt.block_on(async {
        let (receiver, seen, total) = counting_receiver().await?;
        let client = reqwest::Client::builder().no_proxy().build()?;
        webhooks(&client, &a.url, receiver, hooks).await?;
        let (pg, conn) = tokio_postgres::connect(&db, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        let start = Instant::now();
        emit(&client, &urls, 0, events / 2, concurrency).await?;
        let in_flight: i64 = pg
            .query_one("SELECT COUNT(*) FROM deliveries WHERE state = 'inflight'", &[])
            .await?
            .get(0);
        drop(b.take()); // SIGKILL
        let killed_at = start.elapsed();
        emit(&client, &urls[..1], events / 2, events, concurrency).await?;
        let want = (events * hooks) as usize;
        let deadline = Instant::now() + Duration::from_secs(900);
        loop {
            let open: i64 = pg
                .query_one("SELECT COUNT(*) FROM deliveries WHERE state IN ('pending', 'inflight')", &[])
                .await?
                .get(0);
            if seen.lock().unwrap().len() >= want && open == 0 {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "not finished 15 minutes after the kill");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let all = start.elapsed();
        let seen = seen.lock().unwrap().clone();
        let expected: Vec<(String, u64)> = (0..hooks)
            .flat_map(|w| (0..events).map(move |s| (format!("/hook/{w}"), s)))
            .collect();
        let lost = expected.iter().filter(|k| !seen.contains_key(*k)).count();
        let dups: u32 = seen.values().map(|n| n - 1).sum();
        let unknown: i64 = pg
            .query_one("SELECT COUNT(*) FROM attempts WHERE verdict = 'unknown'", &[])
            .await?
            .get(0);
        println!(
            "shared-kill run: {events} events × {hooks} webhooks = {want} deliveries, 2 hookjar serve processes on PostgreSQL (fsync on), lease {lease}; kill -9 of one after {} events accepted ({:.2} s in, {in_flight} deliveries in flight in all)",
            events / 2,
            killed_at.as_secs_f64()
        );
        println!(
            "  lost: {lost}; POSTs received: {} ({dups} duplicates); attempts taken over from the dead process (logged unknown): {unknown}; all done after {:.1} s",
            total.load(Ordering::Relaxed),
            all.as_secs_f64()
        );
        anyhow::ensure!(lost == 0, "{lost} deliveries lost");
        Ok::<_, anyhow::Error>(())
    })
}

/// `shared-restart`: fill a PostgreSQL store with `pending` due deliveries, then
/// time a `hookjar serve` process from spawn to its first delivery.
pub fn restart(hookjar: &Path, pending: u64) -> anyhow::Result<()> {
    let cluster = TempCluster::start(true)?;
    let db = cluster.database()?;
    let rt = runtime()?;
    rt.block_on(async {
        let (receiver, _, total) = counting_receiver().await?;
        let fill = Instant::now();
        let store = Store::connect(&StoreConfig::Postgres(PgConfig::new(db.clone()))).await?;
        store
            .create_webhook(hookjar_core::NewWebhook::to(format!("http://{receiver}/hook")), 0)
            .await?;
        let next = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (store, next) = (store.clone(), Arc::clone(&next));
            tasks.push(tokio::spawn(async move {
                let base = time::macros::datetime!(2026-11-27 00:00 UTC);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= pending {
                        return Ok::<_, anyhow::Error>(());
                    }
                    let at = base + time::Duration::microseconds(i as i64);
                    let body = Event::fixture(EventType::LessonCompletion, at).to_payload();
                    let event = NewEvent {
                        id: hookjar_core::webhook::webhook_id(i),
                        event_type: EventType::LessonCompletion,
                        body,
                    };
                    anyhow::ensure!(store.emit(event, 0).await? == 1);
                }
            }));
        }
        for t in tasks {
            t.await??;
        }
        drop(store);
        println!(
            "shared-restart run: {pending} pending deliveries stored in PostgreSQL (fsync on) in {:.1} s",
            fill.elapsed().as_secs_f64()
        );
        let start = Instant::now();
        let serve = Serve::start(hookjar, &db, &[])?;
        let up = start.elapsed();
        while total.load(Ordering::Relaxed) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let first = start.elapsed();
        println!("  hookjar serve ready (banner printed): {:.3} s", up.as_secs_f64());
        println!("  first delivery received after:       {:.3} s", first.as_secs_f64());
        drop(serve);
        Ok::<_, anyhow::Error>(())
    })
}

/// `--hookjar`'s default: the release binary next to this one.
pub fn default_hookjar() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("hookjar")))
        .unwrap_or_else(|| PathBuf::from("target/release/hookjar"))
}
