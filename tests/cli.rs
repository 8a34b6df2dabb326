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
