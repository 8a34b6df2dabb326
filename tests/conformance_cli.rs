//! `hookjar conformance` as a CI tool (issue #9): output paths checked before the run,
//! a server with webhooks refused, SIGINT stops the run with the reports written for
//! what ran, the suite's webhooks deleted and exit code 130.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use hookjar_dispatch::{Config, Dispatcher, StoreConfig};

fn hookjar(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_hookjar"))
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("HOOKJAR_API_KEY")
        .output()
        .expect("run hookjar");
    eprintln!(
        "$ hookjar {}\nexit: {:?}\n--- stdout\n{}\n--- stderr\n{}",
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A reference dispatcher in real time on a runtime of its own.
struct Server {
    url: String,
    rt: tokio::runtime::Runtime,
    _dispatcher: Dispatcher,
}

impl Server {
    fn start() -> Server {
        Server::with(Config {
            api_key: "k".into(),
            store: StoreConfig::InMemory,
            ..Config::default()
        })
    }

    fn with(config: Config) -> Server {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dispatcher = rt
            .block_on(Dispatcher::start(config, "127.0.0.1:0"))
            .unwrap();
        Server {
            url: dispatcher.url(),
            rt,
            _dispatcher: dispatcher,
        }
    }

    fn webhooks(&self) -> u64 {
        let url = format!("{}/v1/webhooks", self.url);
        self.rt.block_on(async {
            let v: serde_json::Value = reqwest::Client::new()
                .get(url)
                .basic_auth("k", Some(""))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["count"].as_u64().unwrap()
        })
    }

    fn create_webhook(&self) {
        let url = format!("{}/v1/webhooks", self.url);
        self.rt.block_on(async {
            let r = reqwest::Client::new()
                .post(url)
                .basic_auth("k", Some(""))
                .json(&serde_json::json!({"target_url": "http://127.0.0.1:1/theirs"}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 201);
        });
    }
}

#[test]
fn an_unwritable_junit_path_fails_before_the_run() {
    let started = std::time::Instant::now();
    let out = hookjar(&["conformance", "--quiet", "--junit", "/nonexistent/x.xml"]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/x.xml"), "{err}");
    assert!(err.contains("checked before running"), "{err}");
    assert!(out.stdout.is_empty(), "no case ran");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_server_with_webhooks_is_refused_unless_allowed() {
    let server = Server::start();
    server.create_webhook();
    let out = hookjar(&[
        "conformance",
        "--quiet",
        "--server",
        &server.url,
        "--api-key",
        "k",
        "--only",
        "S5",
    ]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already has 1 webhook(s)"), "{err}");
    assert!(err.contains("would receive the suite's events"), "{err}");
    assert!(err.contains("--allow-existing-webhooks"), "{err}");
    let out = hookjar(&[
        "conformance",
        "--quiet",
        "--server",
        &server.url,
        "--api-key",
        "k",
        "--only",
        "S5",
        "--allow-existing-webhooks",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(server.webhooks(), 1, "theirs is left alone");
}

#[cfg(unix)]
#[test]
fn sigint_writes_the_reports_for_what_ran_cleans_up_and_exits_130() {
    let server = Server::start();
    let dir = std::env::temp_dir().join(format!("hookjar-sigint-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let junit = dir.join("report.xml");
    // S5 ends at once; S14 takes a minute of real back-offs at scale 1.
    let child = Command::new(env!("CARGO_BIN_EXE_hookjar"))
        .args([
            "conformance",
            "--quiet",
            "--server",
            &server.url,
            "--api-key",
            "k",
            "--only",
            "S5",
            "--only",
            "S14.backoff",
            "--junit",
            junit.to_str().unwrap(),
        ])
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until S14's webhook exists, then interrupt.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while server.webhooks() == 0 {
        assert!(std::time::Instant::now() < deadline, "S14 never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("pass S5.auth"),
        "streamed before the stop: {stdout}"
    );
    assert!(!stdout.contains("S14.backoff"), "{stdout}");
    assert!(stdout.contains("interrupted"), "{stdout}");
    assert_eq!(server.webhooks(), 0, "the suite's webhooks were deleted");
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let names: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .filter_map(|n| n.attribute("name"))
        .collect();
    assert_eq!(
        names,
        [
            "S5.auth",
            "S5.ping",
            "S5.key-only-as-username",
            "S5.refusals"
        ]
    );
    assert!(xml.contains("interrupted"), "{xml}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Portability (d): a dispatcher with another retry policy, described by the flags.
#[test]
fn the_policy_flags_describe_the_servers_policy() {
    let server = Server::with(Config {
        api_key: "k".into(),
        store: StoreConfig::InMemory,
        time_scale: 1000.0,
        policy: hookjar_core::RetryPolicy {
            base_delay: Duration::from_secs(3),
            max_delay: Duration::from_secs(600),
            max_retries: 12,
            ..hookjar_core::RetryPolicy::default()
        },
        ..Config::default()
    });
    let base = [
        "conformance",
        "--quiet",
        "--server",
        &server.url,
        "--api-key",
        "k",
        "--time-scale",
        "1000",
        "--only",
        "S15.exhaustion",
    ];
    let told: Vec<&str> = base
        .iter()
        .copied()
        .chain([
            "--base-delay",
            "3s",
            "--max-delay",
            "600s",
            "--retry-limit",
            "12",
        ])
        .collect();
    let out = hookjar(&told);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("pass S15.exhaustion"));
    // Not told, the suite expects Skilljar's 2 s doubling and sees 3 s.
    let mut not_told = base.to_vec();
    *not_told.last_mut().unwrap() = "S14.backoff";
    let out = hookjar(&not_told);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAIL S14.backoff"));
    let out = hookjar(&["conformance", "--quiet", "--base-delay", "3s"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("add --server URL"));
}

/// At ×36000 a 2 s back-off lasts 56 µs of wall time: S14.backoff is INCONCLUSIVE.
/// That does not fail a run, but the run says so and which scale resolves it; with
/// --strict it fails (a CI job must not pass what it could not check).
#[test]
fn inconclusive_cases_fail_the_run_only_with_strict_and_the_run_says_which_scale_resolves_them() {
    let server = Server::with(Config {
        api_key: "k".into(),
        store: StoreConfig::InMemory,
        time_scale: 36000.0,
        ..Config::default()
    });
    let args = [
        "conformance",
        "--server",
        &server.url,
        "--api-key",
        "k",
        "--time-scale",
        "36000",
        "--quick",
        "--only",
        "S14.backoff",
    ];
    let out = hookjar(&args);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(stdout.contains("1 INCONCLUSIVE"), "{stdout}");
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stderr.contains("1 INCONCLUSIVE case did not fail this run; --time-scale ")
            && stderr.contains("--strict makes them fail it"),
        "{stderr}"
    );
    let junit = std::env::temp_dir().join(format!("hookjar-strict-{}.xml", std::process::id()));
    let junit_arg = junit.to_str().unwrap().to_owned();
    let strict: Vec<&str> = args
        .iter()
        .copied()
        .chain(["--strict", "--junit", &junit_arg])
        .collect();
    let out = hookjar(&strict);
    assert_eq!(out.status.code(), Some(1));
    // The JUnit report agrees with the exit code: a failure, not a skip.
    let xml = std::fs::read_to_string(&junit).unwrap();
    let _ = std::fs::remove_file(&junit);
    assert!(
        xml.contains("<failure")
            && xml.contains("type=\"inconclusive\"")
            && !xml.contains("<skipped"),
        "{xml}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("1 INCONCLUSIVE case fails this run (--strict)")
    );
    // --strict fails nothing else: a case that needs no timing passes at the same scale.
    let mut resolved: Vec<&str> = args.iter().copied().chain(["--strict"]).collect();
    let only = resolved.iter().position(|a| *a == "S14.backoff").unwrap();
    resolved[only] = "S16.deactivate-4xx";
    let out = hookjar(&resolved);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("pass S16.deactivate-4xx"));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("INCONCLUSIVE"));
}
