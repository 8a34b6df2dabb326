//! `hookjar serve --db postgres://…` as real processes on a throw-away PostgreSQL
//! cluster (issue #12): the conformance suite over HTTP against one process and
//! against two processes behind one API key, and `kill -9` of one of two during a
//! run. Skipped with one `skipped: …` line when PostgreSQL is not installed (a
//! failure under `HOOKJAR_REQUIRE_POSTGRES=1`). Real time: what is tested is what
//! survives a killed process.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use hookjar_conformance::Status;
use hookjar_conformance::check::Quiet;
use hookjar_conformance::suite::{self, Options, Target, TimeMode};
use hookjar_core::RetryPolicy;
use hookjar_dispatch::pgtemp::TempCluster;

const KEY: &str = "k";
/// base64("k:").
const KEY_BASIC: &str = "azo=";

/// A running `hookjar serve`, killed with SIGKILL when dropped.
struct Serve {
    child: Child,
    port: u16,
}

impl Serve {
    fn start(db: &str, args: &[&str]) -> Serve {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_hookjar"))
            .args(["serve", "--db", db, "--api-key", KEY])
            .args(["--addr", &format!("127.0.0.1:{port}")])
            .args(args)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run hookjar serve");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut banner = String::new();
        loop {
            let mut line = String::new();
            assert!(
                out.read_line(&mut line).unwrap_or(0) > 0,
                "hookjar serve exited: {:?}\n{banner}",
                child.wait()
            );
            banner.push_str(&line);
            if line.starts_with("Press Ctrl-C") {
                break;
            }
        }
        assert!(banner.contains("store: PostgreSQL"), "{banner}");
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = out.read_to_string(&mut sink);
        });
        Serve { child, port }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn call(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        // A server that hangs fails the test instead of holding it forever.
        s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        s.write_all(format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {KEY_BASIC}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ).as_bytes())
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the whole suite over HTTP against `server`, whose time scale is `scale`.
async fn suite_against(server: &Serve, scale: f64) {
    let target = Target {
        url: server.url(),
        api_key: KEY.into(),
        time: TimeMode::Scaled(scale),
        policy: RetryPolicy::default(),
    };
    let report = suite::run(&target, &Options::default(), &mut Quiet)
        .await
        .unwrap();
    // At a high scale the shortest back-offs cannot be measured: such a case is
    // INCONCLUSIVE (never a pass, docs/testing.md); every other case must pass.
    let failed: Vec<_> = report
        .cases
        .iter()
        .filter(|c| !matches!(c.status, Status::Pass | Status::Inconclusive))
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    let passed = report
        .cases
        .iter()
        .filter(|c| c.status == Status::Pass)
        .count();
    assert!(
        passed + 2 >= report.cases.len(),
        "only {passed} of {} cases passed",
        report.cases.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_conformance_over_http_with_one_process() {
    let Some(cluster) =
        TempCluster::start_or_skip("postgres_conformance_over_http_with_one_process")
    else {
        return;
    };
    let db = cluster.database().unwrap();
    let a = Serve::start(&db, &["--time-scale", "3600"]);
    suite_against(&a, 3600.0).await;
}

/// Two processes on one database behind one API key: the suite talks to one, the
/// deliveries are made by whichever claims them, and every case still passes
/// (one POST per delivery, the back-off gaps, deactivation).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_conformance_over_http_with_two_processes() {
    let Some(cluster) =
        TempCluster::start_or_skip("postgres_conformance_over_http_with_two_processes")
    else {
        return;
    };
    let db = cluster.database().unwrap();
    let a = Serve::start(&db, &["--time-scale", "3600"]);
    let _b = Serve::start(&db, &["--time-scale", "3600"]);
    suite_against(&a, 3600.0).await;
}

/// A receiver that answers 200 after `delay` and counts each `(path, n)` it saw
/// (`n`: the event's `"seq"` key).
struct Receiver {
    port: u16,
    seen: Arc<Mutex<HashMap<(String, u64), usize>>>,
}

impl Receiver {
    fn start(delay: Duration) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(HashMap::new()));
        let counts = Arc::clone(&seen);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let counts = Arc::clone(&counts);
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 8192];
                    let (path, body) = loop {
                        let n = conn.read(&mut chunk).unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some((head, body)) = hookjar_tests::complete_request(&buf) {
                            let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
                            break (path, body);
                        }
                    };
                    std::thread::sleep(delay);
                    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                    if let Some(n) = v.get("seq").and_then(|n| n.as_u64()) {
                        *counts.lock().unwrap().entry((path, n)).or_insert(0) += 1;
                    }
                    let _ = conn.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    );
                });
            }
        });
        Receiver { port, seen }
    }
}

/// `kill -9` of one of two processes while it has attempts in flight: every
/// accepted event reaches every webhook; the dead process's in-flight attempts
/// are taken over when their lease ends (counted as made, outcome unknown), and
/// the duplicates this causes are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_kill_9_of_one_of_two_loses_nothing() {
    let Some(cluster) = TempCluster::start_or_skip("postgres_kill_9_of_one_of_two_loses_nothing")
    else {
        return;
    };
    let db = cluster.database().unwrap();
    let (client, conn) = tokio_postgres::connect(&db, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let receiver = Receiver::start(Duration::from_millis(50));
    let a = Serve::start(&db, &["--lease", "2s"]);
    let b = Serve::start(&db, &["--lease", "2s"]);
    for path in ["a", "b"] {
        let (status, body) = a.call(
            "POST",
            "/v1/webhooks",
            &format!(
                "{{\"target_url\": \"http://127.0.0.1:{}/{path}\"}}",
                receiver.port
            ),
        );
        assert_eq!(status, 201, "{body}");
    }
    const EVENTS: u64 = 300;
    let b_pid = b.pid();
    let mut b = Some(b);
    let mut taken_in_flight = 0i64;
    for n in 0..EVENTS {
        let (status, body) = a.call(
            "POST",
            "/v1/events",
            &format!("{{\"event_type\": \"LESSON_COMPLETION\", \"seq\": {n}}}"),
        );
        assert_eq!(status, 202, "{body}");
        if n >= EVENTS / 2 && b.is_some() {
            // Kill B once it has attempts in flight.
            let inflight: i64 = client
                .query_one(
                    "SELECT COUNT(*) FROM deliveries WHERE state = 'inflight' AND claimed_by LIKE $1",
                    &[&format!("{b_pid}-%")],
                )
                .await
                .unwrap()
                .get(0);
            if inflight > 0 {
                b.take().unwrap().child.kill().unwrap();
                taken_in_flight = inflight;
            }
        }
    }
    assert!(b.is_none(), "process B never had an attempt in flight");
    let want = 2 * EVENTS as usize;
    let deadline = Instant::now() + Duration::from_secs(90);
    // Until every pair arrived and the store holds nothing unfinished (the dead
    // process's claims were taken over once their lease ended, and retried).
    loop {
        let got = receiver.seen.lock().unwrap().len();
        let open: i64 = client
            .query_one(
                "SELECT COUNT(*) FROM deliveries WHERE state IN ('pending', 'inflight')",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if got == want && open == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "90 s after the kill: {got} of {want} (event, URL) pairs delivered, {open} deliveries unfinished"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = receiver.seen.lock().unwrap().clone();
    let posts: usize = seen.values().sum();
    let unknown: i64 = client
        .query_one(
            "SELECT COUNT(*) FROM attempts WHERE verdict = 'unknown'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    eprintln!(
        "kill -9 of one of two: {want} of {want} delivered, {posts} POSTs ({} duplicates), {taken_in_flight} in flight at the kill, {unknown} taken over as unknown",
        posts - want
    );
    assert!(unknown >= 1, "the dead process's attempts were taken over");
    // Every delivery ended delivered (none failed, none dropped).
    let left: i64 = client
        .query_one(
            "SELECT COUNT(*) FROM deliveries WHERE state <> 'delivered'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}

/// A TCP proxy in front of PostgreSQL that can stop passing bytes, both ways, while
/// keeping every connection open: a database that stalls instead of refusing (a host
/// gone without a reset, a hung link). Bytes read meanwhile are held and passed on
/// once it flows again.
struct StallingProxy {
    port: u16,
    stalled: Arc<(Mutex<bool>, Condvar)>,
}

impl StallingProxy {
    fn start(target: u16) -> StallingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stalled = Arc::new((Mutex::new(false), Condvar::new()));
        let gate = Arc::clone(&stalled);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let pairs = [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ];
                for (mut from, mut to) in pairs {
                    let gate = Arc::clone(&gate);
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        while let Ok(n @ 1..) = from.read(&mut buf) {
                            let (lock, flowing) = &*gate;
                            drop(flowing.wait_while(lock.lock().unwrap(), |s| *s).unwrap());
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        StallingProxy { port, stalled }
    }

    fn stall(&self, stalled: bool) {
        let (lock, flowing) = &*self.stalled;
        *lock.lock().unwrap() = stalled;
        flowing.notify_all();
    }
}

/// A PostgreSQL database that stalls rather than refusing: API calls answer 503
/// after `PG_API_TIMEOUT` (10 s) instead of hanging until TCP gives up (minutes),
/// and once the database answers again so does the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_api_calls_answer_503_while_the_database_stalls() {
    let Some(cluster) =
        TempCluster::start_or_skip("postgres_api_calls_answer_503_while_the_database_stalls")
    else {
        return;
    };
    let db = cluster.database().unwrap();
    let proxy = StallingProxy::start(cluster.port());
    let direct = format!("127.0.0.1:{}/", cluster.port());
    assert!(db.contains(&direct), "{db}");
    let db = db.replace(&direct, &format!("127.0.0.1:{}/", proxy.port));
    let server = Serve::start(&db, &[]);
    let (status, body) = server.call("GET", "/v1/webhooks", "");
    assert_eq!(status, 200, "{body}");

    proxy.stall(true);
    for (method, path, body) in [
        ("GET", "/v1/webhooks", ""),
        (
            "POST",
            "/v1/events",
            r#"{"event_type": "COURSE_COMPLETION"}"#,
        ),
    ] {
        let started = Instant::now();
        let (status, answer) = server.call(method, path, body);
        let took = started.elapsed();
        assert_eq!(status, 503, "{method} {path} while stalled: {answer}");
        assert!(answer.contains("PostgreSQL"), "{method} {path}: {answer}");
        assert!(
            took >= Duration::from_secs(9) && took < Duration::from_secs(30),
            "{method} {path} answered 503 after {took:?}, not after the 10 s timeout"
        );
    }

    proxy.stall(false);
    let started = Instant::now();
    loop {
        let (status, body) = server.call("GET", "/v1/webhooks", "");
        if status == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "still {status} 30 s after the database flows again: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
