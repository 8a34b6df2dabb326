//! The `hookjar` binary, run as a user runs it: output snapshots and exit codes.

use std::process::{Command, Output};

use hookjar_tests::snapshot_settings;

/// Runs `hookjar ARGS…`, printing the full context if anything below fails.
fn hookjar(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_hookjar"))
        .args(args)
        .env("NO_COLOR", "1")
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
    assert_eq!(out.status.code(), Some(3));
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
    assert_eq!(out.status.code(), Some(3));
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
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no case matches --only S99"));
}

#[test]
fn simulate_503_forever_json() {
    let out = hookjar(&["simulate", "--script", "503", "--format", "json"]);
    assert!(out.status.success());
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
    assert!(text.contains("would be retried 60 times"), "{text}");
    let reqs = m.mock.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        reqs[0].json.as_ref().unwrap()["user"]["email"],
        "ada@example.com"
    );
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
    let out = Command::new(env!("CARGO_BIN_EXE_hookjar"))
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
