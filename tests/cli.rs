//! The `hookjar` binary, run as a user runs it: output snapshots and exit codes.
//!
//! `HOOKJAR_BIN=/path/to/hookjar` runs the suite against another build (e.g. an
//! older one, to see a test fail before its fix).

use std::process::{Command, Output};

use hookjar_tests::snapshot_settings;

/// The binary under test.
fn bin() -> String {
    std::env::var("HOOKJAR_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_hookjar").to_owned())
}

/// Runs `hookjar ARGS…`, printing the full context if anything below fails.
fn hookjar(args: &[&str]) -> Output {
    hookjar_env(args, &[("NO_COLOR", "1")])
}

/// [`hookjar`] with these environment variables (and without NO_COLOR unless given).
fn hookjar_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run hookjar");
    eprintln!(
        "$ hookjar {}\nexit: {:?}\n--- stdout\n{}\n--- stderr\n{}",
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("UTF-8 output")
}

#[test]
fn s14_schedule_json_has_the_default_schedule() {
    let out = hookjar(&["schedule", "--format", "json"]);
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["retries"], 60);
    assert_eq!(doc["total_s"], 180_494);
    let attempts = doc["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 61);
    assert_eq!(
        attempts[0],
        serde_json::json!({"attempt": 0, "delay_s": 0, "at_s": 0})
    );
    assert_eq!(
        attempts[1],
        serde_json::json!({"attempt": 1, "delay_s": 2, "at_s": 2})
    );
    let delays: Vec<u64> = attempts[1..]
        .iter()
        .map(|a| a["delay_s"].as_u64().unwrap())
        .collect();
    assert_eq!(
        &delays[..11],
        &[2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048]
    );
    assert!(delays[11..].iter().all(|&d| d == 3600));
    assert_eq!(attempts[60]["at_s"], 180_494);
}

#[test]
fn s14_schedule_table_snapshot() {
    let out = hookjar(&["schedule"]);
    assert!(out.status.success());
    snapshot_settings().bind(|| insta::assert_snapshot!("cli__schedule_table", stdout(&out)));
}

#[test]
fn s14_schedule_flags_change_the_policy() {
    let out = hookjar(&[
        "schedule",
        "--format",
        "json",
        "--base-delay",
        "1s",
        "--max-delay",
        "10s",
        "--retry-limit",
        "5",
    ]);
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let delays: Vec<u64> = doc["attempts"].as_array().unwrap()[1..]
        .iter()
        .map(|a| a["delay_s"].as_u64().unwrap())
        .collect();
    assert_eq!(delays, [1, 2, 4, 8, 10]);
    assert_eq!(doc["total_s"], 25);
}

#[test]
fn schedule_rejects_an_impossible_policy() {
    let out = hookjar(&["schedule", "--base-delay", "10s", "--max-delay", "1s"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an impossible policy is bad input"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("must not be shorter than the base delay"),
        "{err}"
    );
    let out = hookjar(&["schedule", "--base-delay", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("write e.g. 500ms, 2s, 10m or 1h"));
}

#[test]
fn s10_fixtures_list_has_the_ten_types() {
    let out = hookjar(&["fixtures", "list"]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 10);
    snapshot_settings().bind(|| insta::assert_snapshot!("cli__fixtures_list", text));
}

#[test]
fn s11_every_fixture_shows_as_json_with_its_type() {
    let types: Vec<String> = stdout(&hookjar(&["fixtures", "list"]))
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .chain(["PING".to_owned()])
        .collect();
    assert_eq!(types.len(), 11);
    for t in &types {
        let out = hookjar(&["fixtures", "show", t]);
        assert!(out.status.success(), "{t}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["event_type"], t.as_str());
        assert!(v["timestamp"].is_string(), "{t} has a timestamp");
    }
    let out = hookjar(&["fixtures", "show", "course-completion"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["event_type"], "COURSE_COMPLETION");
}

#[test]
fn fixtures_show_unknown_type_says_what_to_do() {
    let out = hookjar(&["fixtures", "show", "COURSE_STARTED"]);
    assert_eq!(out.status.code(), Some(2), "an unknown type is bad input");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown event type \"COURSE_STARTED\""),
        "{err}"
    );
    assert!(err.contains("hookjar fixtures list"), "{err}");
}

#[test]
fn help_snapshot() {
    let out = hookjar(&["--help"]);
    assert!(out.status.success());
    snapshot_settings().bind(|| insta::assert_snapshot!("cli__help", stdout(&out)));
}

/// A mock receiver on a background runtime, for commands that send to a URL.
struct Background {
    mock: hookjar_mock::MockReceiver,
    _rt: tokio::runtime::Runtime,
}

fn background_mock(
    build: impl FnOnce(hookjar_mock::MockReceiverBuilder) -> hookjar_mock::MockReceiverBuilder,
) -> Background {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mock = rt
        .block_on(build(hookjar_mock::MockReceiver::builder()).start())
        .unwrap();
    Background { mock, _rt: rt }
}

#[test]
fn conformance_passes_and_writes_junit() {
    let dir = std::env::temp_dir().join(format!("hookjar-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let junit = dir.join("conformance.xml");
    let out = hookjar(&["conformance", "--quiet", "--junit", junit.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(text.contains("pass S15.exhaustion"), "{text}");
    assert!(text.contains(" passed, 0 failed"), "{text}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("valid JUnit XML");
    let cases = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .count();
    assert!(cases >= 30, "{cases} test cases");
    assert_eq!(
        doc.descendants()
            .filter(|n| n.has_tag_name("failure"))
            .count(),
        0
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn conformance_json_and_only() {
    let out = hookjar(&[
        "conformance",
        "--quiet",
        "--format",
        "json",
        "--only",
        "S14.backoff",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["passed"], true);
    assert_eq!(doc["cases"][0]["id"], "S14.backoff");
    assert_eq!(doc["cases"].as_array().unwrap().len(), 1);
    let out = hookjar(&["conformance", "--only", "S99"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an --only that matches nothing is bad input"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("no case matches --only S99"));
}

#[test]
fn simulate_503_forever_json() {
    let out = hookjar(&["simulate", "--script", "503", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1), "it ends in RETRY_COUNT");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let attempts = doc["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 61);
    assert_eq!(attempts[0]["at_s"], 0);
    assert_eq!(attempts[0]["status"], 503);
    assert_eq!(attempts[0]["verdict"], "retry");
    assert_eq!(attempts[0]["next_delay_s"], 2);
    let gaps: Vec<u64> = attempts[..60]
        .iter()
        .map(|a| a["next_delay_s"].as_u64().unwrap())
        .collect();
    let mut expected: Vec<u64> = (1..=11).map(|i| 1u64 << i).collect();
    expected.extend(std::iter::repeat_n(3600, 49));
    assert_eq!(gaps, expected);
    assert_eq!(attempts[60]["verdict"], "deactivate");
    assert_eq!(doc["final"]["active"], false);
    assert_eq!(doc["final"]["deactivate_reason"], "RETRY_COUNT");
}

#[test]
fn simulate_rejects_a_bad_script_pointing_at_the_token() {
    let out = hookjar(&["simulate", "--script", "503*x"]);
    assert_eq!(out.status.code(), Some(2), "a bad value is a usage error");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid value '503*x' for '--script <SCRIPT>'"),
        "{err}"
    );
    assert!(err.contains('^'), "the snippet points at the token: {err}");
}

#[test]
fn check_passes_a_correct_endpoint_and_fails_bad_ones() {
    let good = background_mock(|b| b.basic_auth("u", "p"));
    let url = format!("{}/hook", good.mock.url());
    let out = hookjar(&["check", &url, "--basic-auth", "u:p", "--quiet"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    // Ignores Basic auth: forged requests are accepted.
    let lax = background_mock(|b| b);
    let url = format!("{}/hook", lax.mock.url());
    let out = hookjar(&["check", &url, "--basic-auth", "u:p", "--quiet"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("FAIL auth.missing"),
        "{}",
        stdout(&out)
    );

    // 404 for one type: the consequence is spelled out.
    let picky = background_mock(|b| {
        b.for_type(hookjar_core::EventType::LessonCompletion, "404")
            .unwrap()
    });
    let url = format!("{}/hook", picky.mock.url());
    let out = hookjar(&["check", &url, "--quiet", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let failed: Vec<&serde_json::Value> = doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["id"], "event.LESSON_COMPLETION");
    assert!(
        failed[0]["seen"]
            .as_str()
            .unwrap()
            .contains("deactivate your webhook at once")
    );

    // Too slow for a 300 ms timeout (the check's own timeout; the mock waits 1 s).
    let slow = background_mock(|b| b.script("200@1s").unwrap());
    let url = format!("{}/hook", slow.mock.url());
    let out = hookjar(&[
        "check",
        &url,
        "--timeout",
        "300ms",
        "--type",
        "COURSE_ENROLLMENT",
        "--quiet",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("FAIL event.COURSE_ENROLLMENT"), "{text}");
    assert!(text.contains("FAIL latency"), "{text}");
}

#[test]
fn send_prints_request_answer_and_verdict() {
    let m = background_mock(|b| b.script("503").unwrap());
    let url = format!("{}/x", m.mock.url());
    let out = hookjar(&[
        "send",
        "course-completion",
        "--to",
        &url,
        "--set",
        "user.email=ada@example.com",
        "--basic-auth",
        "u:p",
    ]);
    assert_eq!(out.status.code(), Some(1), "a 503 is not a delivery");
    let text = stdout(&out);
    assert!(text.contains("> User-Agent: skilljar"), "{text}");
    assert!(text.contains("> Authorization: Basic dTpw"), "{text}");
    assert!(text.contains("< HTTP 503"), "{text}");
    assert!(
        text.contains("would be retried until a 2xx, at most 60 times"),
        "{text}"
    );
    let reqs = m.mock.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        reqs[0].json.as_ref().unwrap()["user"]["email"],
        "ada@example.com"
    );
}

/// A PING is judged by S13 (a failed ping is never retried and never deactivates),
/// not as an event (a 404 to an event would deactivate the webhook).
#[test]
fn send_judges_a_ping_by_s13() {
    let m = background_mock(|b| b.script("404").unwrap());
    let url = format!("{}/x", m.mock.url());
    let out = hookjar(&["send", "PING", "--to", &url]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed ping fails the command"
    );
    let text = stdout(&out);
    assert!(text.contains("ping: failed"), "{text}");
    assert!(
        text.contains("never retried and never deactivates"),
        "{text}"
    );
    assert!(!text.contains("HTTP_4XX_RESPONSE"), "{text}");
    let out = hookjar(&["send", "PING", "--to", &url, "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(doc["verdict"], serde_json::Value::Null, "{doc}");
    assert_eq!(doc["ping"]["succeeded"], false, "{doc}");
    assert_eq!(doc["ping"]["http_status_code"], 404, "{doc}");

    let ok = background_mock(|b| b);
    let out = hookjar(&["send", "PING", "--to", &format!("{}/x", ok.mock.url())]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("ping: succeeded"), "{}", stdout(&out));
}

/// A 303 turns the POST into a GET without the body (S18): Skilljar counts the GET's
/// 200, but the endpoint never got the event, so `send` says so, shows the hop and
/// fails.
#[test]
fn send_never_calls_a_post_lost_to_a_303_delivered() {
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(async {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(303).insert_header("location", "/thanks"))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&server)
            .await;
        server
    });
    let out = hookjar(&[
        "send",
        "course-completion",
        "--to",
        &format!("{}/hook", server.uri()),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("< HTTP 303 redirect to")
            && text.contains("followed as a GET without the body"),
        "{text}"
    );
    assert!(text.contains("your endpoint never got the event"), "{text}");
    drop(server);
}

#[test]
fn replay_sends_every_fixture_in_order() {
    let m = background_mock(|b| b);
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/events");
    let out = hookjar(&["replay", dir, "--to", &m.mock.url()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains("11 delivered, 0 not delivered"),
        "{}",
        stdout(&out)
    );
    let types: Vec<String> = m
        .mock
        .requests()
        .iter()
        .filter_map(|r| r.event_type.clone())
        .collect();
    assert_eq!(types.len(), 11);
    assert_eq!(types[0], "COURSE_COMPLETION", "name order");
}

/// The marker after which `docs/cli.md` is generated from `--help`.
const CLI_DOC_MARKER: &str = "<!-- Everything below is generated from `hookjar … --help` by tests/cli.rs (docs_cli_md_matches_help); regenerate with HOOKJAR_UPDATE_DOCS=1 cargo test -p hookjar --test cli docs_cli -->";

/// `docs/cli.md` carries every command's `--help` verbatim, so it cannot drift from the
/// code. `HOOKJAR_UPDATE_DOCS=1` rewrites the generated part.
#[test]
fn docs_cli_md_matches_help() {
    let commands: &[&[&str]] = &[
        &["conformance"],
        &["check"],
        &["send"],
        &["replay"],
        &["simulate"],
        &["mock"],
        &["serve"],
        &["emit"],
        &["schedule"],
        &["fixtures", "list"],
        &["fixtures", "show"],
    ];
    let mut generated = String::new();
    for cmd in commands {
        let mut args: Vec<&str> = cmd.to_vec();
        args.push("--help");
        let out = hookjar(&args);
        assert!(out.status.success(), "{args:?}");
        generated.push_str(&format!(
            "\n## `hookjar {}`\n\n```text\n{}```\n",
            cmd.join(" "),
            stdout(&out)
        ));
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/cli.md");
    let current = std::fs::read_to_string(path).expect("docs/cli.md exists");
    let (head, tail) = current
        .split_once(CLI_DOC_MARKER)
        .expect("docs/cli.md keeps the generated-part marker");
    if std::env::var_os("HOOKJAR_UPDATE_DOCS").is_some() {
        std::fs::write(path, format!("{head}{CLI_DOC_MARKER}\n{generated}")).unwrap();
        return;
    }
    assert_eq!(
        tail.trim(),
        generated.trim(),
        "docs/cli.md is out of date: run HOOKJAR_UPDATE_DOCS=1 cargo test -p hookjar --test cli docs_cli"
    );
}

#[test]
fn conformance_ignores_an_api_key_from_the_environment_without_server() {
    // Users export HOOKJAR_API_KEY for serve/emit; the self-hosted suite must still run.
    let out = Command::new(bin())
        .args(["conformance", "--quiet", "--only", "S5"])
        .env("HOOKJAR_API_KEY", "from-env")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn commands_refuse_urls_skilljar_would_not_accept() {
    for args in [
        &["send", "PING", "--to", "nope"][..],
        &["check", "ftp://example.com/hook"][..],
        &["replay", "fixtures", "--to", "/relative"][..],
    ] {
        let out = hookjar(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("is not a URL Skilljar would accept"), "{err}");
    }
}

/// A server command run under `sh -c 'ulimit -n N; exec hookjar …'`, with the URL it
/// prints at start.
struct Child {
    child: std::process::Child,
    url: String,
    /// Kept open: the server prints more after its first line.
    _stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl Child {
    fn start(fd_limit: u32, args: &[&str], banner: &str) -> Child {
        use std::io::BufRead as _;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -n {fd_limit} && exec \"$0\" \"$@\""))
            .arg(bin())
            .args(args)
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run hookjar under sh");
        let mut first = String::new();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut first).unwrap();
        let url = first
            .trim()
            .strip_prefix(banner)
            .unwrap_or_else(|| panic!("{args:?} printed {first:?}"))
            .trim()
            .to_owned();
        Child {
            child,
            url,
            _stdout: stdout,
        }
    }

    /// Stops it (it must still be running) and returns its stderr.
    fn stop(mut self) -> String {
        use std::io::Read as _;
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "the server is still running"
        );
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let mut err = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        eprintln!("--- server stderr\n{err}");
        err
    }
}

/// Opens `n` connections that send nothing.
fn idle_sockets(addr: &str, n: usize) -> Vec<std::net::TcpStream> {
    (0..n)
        .map(|_| std::net::TcpStream::connect(addr).expect("connect"))
        .collect()
}

/// `GET path` on a fresh connection, waiting at most `wait`; the status line.
fn get_status(addr: &str, path: &str, auth: Option<&str>, wait: std::time::Duration) -> String {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(wait)).unwrap();
    let auth = auth
        .map(|a| format!("Authorization: Basic {a}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

/// Issue #13 item 1: with 64 file descriptors, 120 idle sockets exhaust them; the API
/// backs off instead of dying, closes the idle sockets at the 1 s header timeout and
/// answers again.
#[test]
fn serve_keeps_answering_when_out_of_file_descriptors() {
    let server = Child::start(
        64,
        &[
            "serve",
            "--in-memory",
            "--api-key",
            "k",
            "--addr",
            "127.0.0.1:0",
            "--header-timeout",
            "1s",
        ],
        "hookjar dispatcher listening on",
    );
    let addr = server.url.trim_start_matches("http://").to_owned();
    let idle = idle_sockets(&addr, 120);
    let status = get_status(
        &addr,
        "/v1/ping",
        Some("azo="),
        std::time::Duration::from_secs(20),
    );
    drop(idle);
    let err = server.stop();
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(err.contains("API: cannot accept connections"), "{err}");
}

/// The same for the mock receiver, and its connection cap: at 8 connections the
/// receiver says so, and serves the next client once idle ones close.
#[test]
fn mock_keeps_answering_at_its_connection_cap_and_fd_limit() {
    let mock = Child::start(
        64,
        &[
            "mock",
            "--addr",
            "127.0.0.1:0",
            "--header-timeout",
            "1s",
            "--max-connections",
            "8",
            "--quiet",
        ],
        "hookjar mock listening on",
    );
    let addr = mock.url.trim_start_matches("http://").to_owned();
    let idle = idle_sockets(&addr, 20);
    let status = get_status(
        &addr,
        "/_mock/requests",
        None,
        std::time::Duration::from_secs(20),
    );
    drop(idle);
    let err = mock.stop();
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        err.contains("mock receiver: connection limit reached (8 open)"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// Issue #13 item 4: one exit-code convention (docs/cli.md), every bad value refused
// up front with a message that names it.
// ---------------------------------------------------------------------------

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A unique scratch folder for one test.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("hookjar-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn an_unknown_event_type_is_bad_input_in_every_command() {
    let m = background_mock(|b| b);
    let url = m.mock.url();
    for args in [
        &["emit", "NOPE", "--api-key", "k"][..],
        &["simulate", "--script", "200", "--type", "NOPE"][..],
        &["send", "NOPE", "--to", &url][..],
        &["fixtures", "show", "NOPE"][..],
        &["check", &url, "--type", "NOPE"][..],
    ] {
        let out = hookjar(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains("NOPE"), "{args:?}: {}", stderr(&out));
    }
    assert!(m.mock.requests().is_empty(), "nothing was sent");
}

#[test]
fn simulate_exits_1_when_the_webhook_is_deactivated() {
    for (script, code) in [("503", 1), ("404", 1), ("redirect", 1), ("503*3,200", 0)] {
        let out = hookjar(&["simulate", "--script", script]);
        assert_eq!(out.status.code(), Some(code), "--script {script}");
    }
}

#[test]
fn zero_timeouts_are_refused_up_front() {
    let url = "http://127.0.0.1:9/hook";
    for args in [
        &["send", "PING", "--to", url, "--timeout", "0s"][..],
        &["check", url, "--timeout", "0s"][..],
        &["replay", "fixtures/events", "--to", url, "--timeout", "0"][..],
        &["simulate", "--script", "hang", "--timeout", "0ms"][..],
        &["serve", "--in-memory", "--timeout", "0s"][..],
        &["mock", "--header-timeout", "0s"][..],
    ] {
        let out = hookjar(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains("not a usable timeout"), "{args:?}: {err}");
    }
}

#[test]
fn bad_dispatcher_urls_are_refused_naming_them() {
    for (args, bad) in [
        (
            &[
                "emit",
                "COURSE_ENROLLMENT",
                "--server",
                "notaurl",
                "--api-key",
                "k",
            ][..],
            "notaurl",
        ),
        (
            &["conformance", "--server", "ftp://x", "--api-key", "k"][..],
            "ftp://x",
        ),
    ] {
        let out = hookjar(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr(&out);
        assert!(!err.contains("builder error"), "{err}");
        assert!(err.contains(&format!("\"{bad}\"")), "{args:?}: {err}");
    }
}

#[test]
fn a_port_in_use_is_an_environment_problem() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    for args in [
        &["mock", "--addr", &addr][..],
        &["serve", "--in-memory", "--api-key", "k", "--addr", &addr][..],
    ] {
        let out = hookjar(args);
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        assert!(stderr(&out).contains(&addr), "{args:?}: {}", stderr(&out));
    }
    // An unreachable server or endpoint is one too.
    let out = hookjar(&[
        "emit",
        "COURSE_ENROLLMENT",
        "--server",
        "http://127.0.0.1:9",
        "--api-key",
        "k",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let out = hookjar(&[
        "replay",
        "/nonexistent/hookjar.jsonl",
        "--to",
        "http://127.0.0.1:9/",
    ]);
    assert_eq!(out.status.code(), Some(3), "an unreadable file");
}

#[test]
fn host_names_are_accepted_for_addr() {
    let server = Child::start(
        1024,
        &[
            "serve",
            "--in-memory",
            "--api-key",
            "k",
            "--addr",
            "localhost:0",
        ],
        "hookjar dispatcher listening on",
    );
    assert!(
        server.url.starts_with("http://127.0.0.1:"),
        "{}",
        server.url
    );
    server.stop();
    let mock = Child::start(
        1024,
        &["mock", "--addr", "localhost:0", "--quiet"],
        "hookjar mock listening on",
    );
    assert!(mock.url.starts_with("http://127.0.0.1:"), "{}", mock.url);
    mock.stop();
    let out = hookjar(&["mock", "--addr", "localhost"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("\"localhost\""), "{}", stderr(&out));
}

#[test]
fn replay_sends_one_pretty_printed_event_file() {
    let m = background_mock(|b| b);
    let dir = scratch("pretty");
    let file = dir.join("event.json");
    let shown = hookjar(&["fixtures", "show", "COURSE_COMPLETION"]);
    let pretty = serde_json::to_string_pretty(
        &serde_json::from_slice::<serde_json::Value>(&shown.stdout).unwrap(),
    )
    .unwrap();
    assert!(pretty.lines().count() > 3, "pretty-printed");
    std::fs::write(&file, pretty).unwrap();
    let out = hookjar(&["replay", file.to_str().unwrap(), "--to", &m.mock.url()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let reqs = m.mock.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].event_type.as_deref(), Some("COURSE_COMPLETION"));
}

/// Two journal entries as the mock writes them, to `path` with `header`.
fn journal_lines(path: &str, header: (&str, &str)) -> (String, String) {
    let body = |n: u32| {
        format!(r#"{{"event_type":"PING","timestamp":"2026-01-01T00:00:0{n}.000000+00:00"}}"#)
    };
    let line = |n: u32| {
        serde_json::json!({
            "seq": n, "method": "POST", "path": path,
            "headers": [["content-type", "application/json"], ["user-agent", "skilljar"], [header.0, header.1], ["host", "old.example:1"]],
            "body": body(n), "event_type": "PING",
        })
        .to_string()
    };
    (line(1), line(2))
}

#[test]
fn replay_skips_a_torn_journal_line_and_replays_the_rest() {
    let m = background_mock(|b| b);
    let dir = scratch("torn");
    let file = dir.join("torn.jsonl");
    let (a, b) = journal_lines("/hook", ("x-a", "1"));
    let (c, _) = journal_lines("/hook", ("x-a", "3"));
    let c = c.replace("00:00:01", "00:00:03");
    // Line 2 is what a kill -9 during a write leaves: a fragment of a line, and the
    // next run's first line glued to it. Line 4 is a fragment at the end.
    let torn = format!("{a}\n{}{b}\n{c}\n{}", &a[..40], &c[..25]);
    std::fs::write(&file, torn).unwrap();
    let out = hookjar(&["replay", file.to_str().unwrap(), "--to", &m.mock.url()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    let shown = file.display().to_string();
    assert!(
        err.contains(&format!("{shown}:2: a torn journal line")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{shown}:4: a torn journal line")),
        "{err}"
    );
    assert!(
        stdout(&out).contains("3 delivered, 0 not delivered"),
        "{}",
        stdout(&out)
    );
    let stamps: Vec<String> = m
        .mock
        .requests()
        .iter()
        .map(|r| {
            r.json.as_ref().unwrap()["timestamp"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(stamps.len(), 3, "every intact request: {stamps:?}");
    assert!(
        stamps[1].contains("00:00:02") && stamps[2].contains("00:00:03"),
        "{stamps:?}"
    );
}

#[test]
fn replay_keeps_recorded_paths_and_headers_when_asked() {
    let m = background_mock(|b| b);
    let dir = scratch("keep");
    let file = dir.join("journal.jsonl");
    let (a, _) = journal_lines("/orig/path?x=1", ("x-client-id", "abc"));
    std::fs::write(&file, format!("{a}\n")).unwrap();
    let to = format!("{}/elsewhere", m.mock.url());
    let out = hookjar(&["replay", file.to_str().unwrap(), "--to", &to]);
    assert_eq!(out.status.code(), Some(0));
    let out = hookjar(&[
        "replay",
        file.to_str().unwrap(),
        "--to",
        &to,
        "--keep-paths",
        "--keep-headers",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let reqs = m.mock.requests();
    assert_eq!(reqs[0].path, "/elsewhere");
    assert!(!reqs[0].headers.iter().any(|(k, _)| k == "x-client-id"));
    assert_eq!(reqs[1].path, "/orig/path?x=1");
    assert!(
        reqs[1]
            .headers
            .contains(&("x-client-id".to_owned(), "abc".to_owned())),
        "{:?}",
        reqs[1].headers
    );
    assert!(
        !reqs[1]
            .headers
            .iter()
            .any(|(k, v)| k == "host" && v.contains("old.example")),
        "Host is the client's"
    );
}

#[test]
fn send_keeps_a_files_timestamp_when_asked() {
    let m = background_mock(|b| b);
    let dir = scratch("stamp");
    let file = dir.join("event.json");
    std::fs::write(
        &file,
        r#"{"event_type":"PING","timestamp":"2015-02-13T18:57:55.066475+00:00"}"#,
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let url = m.mock.url();
    assert_eq!(hookjar(&["send", f, "--to", &url]).status.code(), Some(0));
    assert_eq!(
        hookjar(&["send", f, "--to", &url, "--keep-timestamp"])
            .status
            .code(),
        Some(0)
    );
    let reqs = m.mock.requests();
    let stamp = |i: usize| {
        reqs[i].json.as_ref().unwrap()["timestamp"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_ne!(
        stamp(0),
        "2015-02-13T18:57:55.066475+00:00",
        "fresh by default"
    );
    assert_eq!(stamp(1), "2015-02-13T18:57:55.066475+00:00");
}

/// check's rows: a ping never deactivates; the duplicate row times both sends; the
/// latency row does not pass when nothing answered.
#[test]
fn check_rows_tell_the_truth() {
    // Every request refused with 401 (the endpoint wants auth the check does not send).
    let strict = background_mock(|b| b.basic_auth("u", "p"));
    let url = format!("{}/hook", strict.mock.url());
    let out = hookjar(&[
        "check",
        &url,
        "--quiet",
        "--format",
        "json",
        "--type",
        "PATH_COMPLETION",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let case = |id: &str| {
        doc["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no {id}"))
            .clone()
    };
    let ping = case("ping")["seen"].as_str().unwrap().to_owned();
    assert!(
        ping.contains("never retried and never deactivates"),
        "{ping}"
    );

    // Slow enough to time: the duplicate row shows both sends.
    let slow = background_mock(|b| b.script("200@40ms").unwrap());
    let url = format!("{}/hook", slow.mock.url());
    let out = hookjar(&[
        "check",
        &url,
        "--quiet",
        "--format",
        "json",
        "--type",
        "PATH_COMPLETION",
    ]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let dup = doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "duplicate")
        .unwrap()
        .clone();
    assert!(dup["duration"].as_u64().unwrap() >= 80, "{dup}");
    assert!(
        dup["seen"]
            .as_str()
            .unwrap()
            .contains("ms then HTTP 200 in "),
        "{dup}"
    );

    // Nothing listens: every request is refused, and latency is no pass.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    let out = hookjar(&[
        "check",
        &url,
        "--quiet",
        "--format",
        "json",
        "--type",
        "PATH_COMPLETION",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let latency = doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "latency")
        .unwrap()
        .clone();
    assert_eq!(latency["status"], "fail", "{latency}");
    assert!(
        latency["seen"]
            .as_str()
            .unwrap()
            .contains("got a whole answer"),
        "{latency}"
    );
}

/// Colour: the same palette in every command that prints verdicts (send, replay,
/// check, the mock's request and violation lines), on with CLICOLOR_FORCE, off with
/// NO_COLOR whatever else is set.
#[test]
fn colour_is_consistent_and_honours_no_color() {
    let m = background_mock(|b| b.script("503").unwrap());
    let url = m.mock.url();
    let esc = "\u{1b}[";
    for args in [
        &["send", "PING", "--to", &url][..],
        &[
            "replay",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../fixtures/events/PING.json"
            ),
            "--to",
            &url,
        ][..],
        &["check", &url, "--quiet", "--type", "PATH_COMPLETION"][..],
    ] {
        let out = hookjar_env(args, &[("CLICOLOR_FORCE", "1")]);
        assert!(stdout(&out).contains(esc), "{args:?} is coloured");
        let out = hookjar_env(args, &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]);
        assert!(!stdout(&out).contains(esc), "{args:?} honours NO_COLOR");
    }
}

/// The mock's console: a violation line is coloured like the other commands' warnings.
#[test]
fn mock_violation_lines_are_coloured() {
    use std::io::{BufRead as _, Read as _, Write as _};
    for (env, coloured) in [
        (vec![("CLICOLOR_FORCE", "1")], true),
        (vec![("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")], false),
    ] {
        let mut cmd = Command::new(bin());
        cmd.args(["mock", "--addr", "127.0.0.1:0"])
            .env_remove("NO_COLOR")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        out.read_line(&mut first).unwrap();
        let addr = first.trim().rsplit("http://").next().unwrap().to_owned();
        // A request that breaks S7: no User-Agent, not JSON.
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            s,
            "POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
        )
        .unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        let mut text = String::new();
        for _ in 0..40 {
            let mut line = String::new();
            if out.read_line(&mut line).unwrap() == 0 {
                break;
            }
            text.push_str(&line);
            if line.contains("! ") {
                break;
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let violation = text
            .lines()
            .find(|l| l.contains("! "))
            .unwrap_or_else(|| panic!("{text}"));
        assert_eq!(violation.contains("\u{1b}[33m"), coloured, "{violation:?}");
    }
}

/// emit: 0 when queued, 1 when the dispatcher refuses (a wrong key, a non-2xx), 2 for
/// bad input, 3 when unreachable (above).
#[test]
fn emit_follows_the_exit_code_table() {
    let server = Child::start(
        1024,
        &[
            "serve",
            "--in-memory",
            "--api-key",
            "k",
            "--addr",
            "127.0.0.1:0",
        ],
        "hookjar dispatcher listening on",
    );
    let ok = hookjar(&[
        "emit",
        "COURSE_ENROLLMENT",
        "--server",
        &server.url,
        "--api-key",
        "k",
    ]);
    let refused = hookjar(&[
        "emit",
        "COURSE_ENROLLMENT",
        "--server",
        &server.url,
        "--api-key",
        "wrong",
    ]);
    let dir = scratch("emit");
    let bad = dir.join("bad.json");
    std::fs::write(&bad, "{not json").unwrap();
    let bad_data = hookjar(&[
        "emit",
        "COURSE_ENROLLMENT",
        "--server",
        &server.url,
        "--api-key",
        "k",
        "--data",
        bad.to_str().unwrap(),
    ]);
    server.stop();
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert_eq!(bad_data.status.code(), Some(2), "{}", stderr(&bad_data));
    assert!(stderr(&bad_data).contains("is not valid JSON"));
}

/// send: a file that is not an event is bad input (2); one that cannot be read is an
/// environment problem (3).
#[test]
fn send_tells_bad_files_from_unreadable_ones() {
    let dir = scratch("sendfile");
    let not_event = dir.join("x.json");
    std::fs::write(&not_event, "[1, 2]").unwrap();
    let out = hookjar(&[
        "send",
        not_event.to_str().unwrap(),
        "--to",
        "http://127.0.0.1:9/",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("is not an event payload"));
    let out = hookjar(&["send", dir.to_str().unwrap(), "--to", "http://127.0.0.1:9/"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "a folder cannot be read as a file"
    );
}
