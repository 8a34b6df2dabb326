//! `hookjar serve` as a process: `kill -9` and restart on one `--db`, a second owner,
//! the kept API key, flags refused at start (issue #8). These run the real binary
//! against a real receiver on loopback, in real time (a few seconds each): what is
//! tested is what survives a killed process, which virtual time cannot show.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KEY: &str = "k";
/// base64("k:"), the Basic credentials of [`KEY`].
const KEY_BASIC: &str = "azo=";

/// A fresh folder for a `--db`.
fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hookjar-serve-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A free loopback port (bound and released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `hookjar serve`, killed with SIGKILL when dropped.
struct Serve {
    child: Child,
    port: u16,
    /// Its stdout up to "Press Ctrl-C to stop."
    banner: String,
}

impl Serve {
    fn start(db: &Path, args: &[&str]) -> Result<Serve, String> {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut child = Command::new(env!("CARGO_BIN_EXE_hookjar"))
            .args(["serve", "--db"])
            .arg(db)
            .args(["--addr", &addr])
            .args(args)
            .env_remove("HOOKJAR_API_KEY")
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run hookjar serve");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut banner = String::new();
        loop {
            let mut line = String::new();
            if out.read_line(&mut line).unwrap_or(0) == 0 {
                let status = child.wait().unwrap();
                let mut err = String::new();
                let _ = child.stderr.take().unwrap().read_to_string(&mut err);
                return Err(format!(
                    "exit {:?}; stdout:\n{banner}\nstderr:\n{err}",
                    status.code()
                ));
            }
            banner.push_str(&line);
            if line.starts_with("Press Ctrl-C") {
                break;
            }
        }
        // Keep draining stdout so the process never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = out.read_to_string(&mut sink);
        });
        Ok(Serve {
            child,
            port,
            banner,
        })
    }

    /// `kill -9`.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn call(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        http(
            self.port,
            &format!(
                "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {KEY_BASIC}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        )
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 exchange over a fresh connection: the status and the body.
fn http(port: u16, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(request.as_bytes()).unwrap();
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

/// A receiver that notes when each request arrived and answers it `status`, the first
/// one only after `first_delay`.
struct Receiver {
    port: u16,
    arrivals: Arc<Mutex<Vec<Instant>>>,
}

impl Receiver {
    /// Answers every request 503 at once.
    fn start() -> Receiver {
        Receiver::start_with(503, Duration::ZERO)
    }

    fn start_with(status: u16, first_delay: Duration) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&arrivals);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let seen = Arc::clone(&seen);
                std::thread::spawn(move || {
                    // Read the head and the body (Content-Length), then answer.
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let n = conn.read(&mut chunk).unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if hookjar_tests::complete_request(&buf).is_some() {
                            break;
                        }
                    }
                    let first = {
                        let mut seen = seen.lock().unwrap();
                        seen.push(Instant::now());
                        seen.len() == 1
                    };
                    if first {
                        std::thread::sleep(first_delay);
                    }
                    let _ = conn.write_all(
                        format!(
                            "HTTP/1.1 {status} Answer\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        )
                        .as_bytes(),
                    );
                });
            }
        });
        Receiver { port, arrivals }
    }

    fn arrivals(&self) -> Vec<Instant> {
        self.arrivals.lock().unwrap().clone()
    }

    /// Waits (real time, bounded) for arrival number `n` (1-based).
    fn wait_for(&self, n: usize, within: Duration) -> Option<Instant> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(at) = self.arrivals().get(n - 1) {
                return Some(*at);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }
}

#[test]
fn x3_after_kill_9_at_scale_3600_the_next_post_comes_within_the_cap() {
    let dir = tempdir("scale");
    let db = dir.join("r.db");
    let receiver = Receiver::start();
    let args = ["--time-scale", "3600", "--api-key", KEY];
    let serve = Serve::start(&db, &args).unwrap();
    let hook = format!(
        r#"{{"target_url": "http://127.0.0.1:{}/hook"}}"#,
        receiver.port
    );
    assert_eq!(serve.call("POST", "/v1/webhooks", &hook).0, 201);
    assert_eq!(
        serve
            .call(
                "POST",
                "/v1/events",
                r#"{"event_type": "COURSE_ENROLLMENT"}"#
            )
            .0,
        202
    );
    // Kill at several points: once the retries reach the 1 h cap (one wall second
    // at this scale), and at odd moments after each restart.
    let mut serve = serve;
    for uptime_ms in [3300, 1700, 450, 2900] {
        std::thread::sleep(Duration::from_millis(uptime_ms));
        serve.kill();
        let before = receiver.arrivals();
        let last = *before.last().expect("POSTs before the kill");
        serve = Serve::start(&db, &args).unwrap();
        let next = receiver
            .wait_for(before.len() + 1, Duration::from_secs(20))
            .expect("a POST after the restart");
        let gap = (next - last).as_secs_f64();
        // The back-off's own bound: the cap (3600 s = 1 s of wall time here) plus at
        // most 1 s.
        assert!(
            gap <= 2.0,
            "after a kill at {uptime_ms} ms of uptime, the next POST came {gap:.2} s after the last one; the bound is 1 s (the cap) + 1 s"
        );
    }
    drop(serve);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn s19_a_second_serve_on_one_db_exits_at_once_naming_the_file_and_the_owner() {
    let dir = tempdir("owner");
    let db = dir.join("o.db");
    let first = Serve::start(&db, &["--api-key", KEY]).unwrap();
    let started = Instant::now();
    let err = match Serve::start(&db, &["--api-key", KEY]) {
        Ok(s) => panic!("a second owner started:\n{}", s.banner),
        Err(e) => e,
    };
    assert!(started.elapsed() < Duration::from_secs(10), "exits at once");
    assert!(err.starts_with("exit Some(3)"), "{err}");
    assert!(
        err.contains(&db.display().to_string()),
        "names the file: {err}"
    );
    assert!(
        err.contains(&format!("pid {}", first.child.id())),
        "names the owner's pid: {err}"
    );
    // A killed owner leaves a stale lock that must not block a restart.
    first.kill();
    let again = Serve::start(&db, &["--api-key", KEY]).expect("restart after kill -9");
    assert_eq!(again.call("GET", "/v1/ping", "").0, 200);
    drop(again);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn s5_a_generated_api_key_is_kept_in_the_db_across_restarts() {
    let dir = tempdir("key");
    let db = dir.join("k.db");
    let key_of = |banner: &str| -> String {
        banner
            .lines()
            .find(|l| l.contains("API key ("))
            .and_then(|l| l.rsplit(' ').next())
            .unwrap_or_else(|| panic!("no generated key in:\n{banner}"))
            .to_owned()
    };
    let first = Serve::start(&db, &[]).unwrap();
    let key = key_of(&first.banner);
    first.kill();
    let second = Serve::start(&db, &[]).unwrap();
    assert_eq!(key_of(&second.banner), key, "the same key after a restart");
    drop(second);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn s6_serve_refuses_a_key_with_a_colon_and_x3_an_absurd_time_scale() {
    let dir = tempdir("flags");
    let db = dir.join("f.db");
    let err = Serve::start(&db, &["--api-key", "user:pass"])
        .err()
        .expect("refused");
    assert!(
        err.starts_with("exit Some(2)") && err.contains("':'"),
        "{err}"
    );
    for scale in ["1e12", "inf", "0", "-3"] {
        let flag = format!("--time-scale={scale}");
        let err = Serve::start(&db, &["--api-key", KEY, &flag])
            .err()
            .expect("refused");
        assert!(
            err.starts_with("exit Some(2)") && err.contains("time scale"),
            "{scale}: {err}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn s19_kill_9_during_a_post_counts_the_attempt_and_waits_its_back_off() {
    let dir = tempdir("inflight");
    let db = dir.join("i.db");
    // The first POST gets no answer for a minute: the kill lands while it waits.
    let receiver = Receiver::start_with(200, Duration::from_secs(60));
    let args = ["--api-key", KEY];
    let serve = Serve::start(&db, &args).unwrap();
    let hook = format!(
        r#"{{"target_url": "http://127.0.0.1:{}/hook"}}"#,
        receiver.port
    );
    let (status, body) = serve.call("POST", "/v1/webhooks", &hook);
    assert_eq!(status, 201, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    serve.call(
        "POST",
        "/v1/events",
        r#"{"event_type": "COURSE_ENROLLMENT"}"#,
    );
    receiver
        .wait_for(1, Duration::from_secs(10))
        .expect("the first POST");
    serve.kill();
    let restart = Instant::now();
    let serve = Serve::start(&db, &args).unwrap();
    let second = receiver
        .wait_for(2, Duration::from_secs(20))
        .expect("a retry after the restart");
    let waited = (second - restart).as_secs_f64();
    assert!(
        waited >= 2.0,
        "the retry came {waited:.2} s after the restart, before its 2 s back-off"
    );
    std::thread::sleep(Duration::from_millis(300));
    let (_, log) = serve.call("GET", &format!("/v1/webhooks/{id}/deliveries"), "");
    let log: serde_json::Value = serde_json::from_str(&log).unwrap();
    let d = &log["results"][0];
    assert_eq!(d["attempts"][0]["verdict"], "unknown", "{d:#}");
    assert_eq!(d["attempts"][1]["verdict"], "delivered", "{d:#}");
    assert_eq!(d["state"], "delivered");
    assert_eq!(receiver.arrivals().len(), 2, "one POST per attempt");
    drop(serve);
    let _ = std::fs::remove_dir_all(dir);
}
