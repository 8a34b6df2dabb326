//! The mock receiver's journal promise, proven with the real `hookjar mock` binary:
//! after a `kill -9` under a load of large bodies, every request that was answered is
//! in the journal file; a run that opens a journal torn by such a kill starts its
//! lines on a fresh line, so every intact line stays readable.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

/// A running `hookjar mock` and its URL.
struct Mock {
    child: Child,
    url: String,
}

fn start(journal: &Path) -> Mock {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hookjar"))
        .args(["mock", "--addr", "127.0.0.1:0", "--quiet", "--journal"])
        .arg(journal)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("hookjar mock starts");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    let url = first
        .trim()
        .strip_prefix("hookjar mock listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first:?}"))
        .to_owned();
    // Keep reading its stdout so it never blocks on a full pipe.
    std::thread::spawn(move || {
        let _ = out.read_to_end(&mut Vec::new());
    });
    Mock { child, url }
}

/// A valid payload of about `size` bytes, distinct for each `n`.
fn big_payload(n: u64, size: usize) -> String {
    format!(
        r#"{{"event_type":"PING","timestamp":"2026-11-27T09:30:00.{n:06}+00:00","pad":"{}"}}"#,
        "x".repeat(size)
    )
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hookjar-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Splits a journal into its complete lines and what follows the last newline.
fn lines(bytes: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let complete = bytes[..end]
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    (complete, &bytes[end..])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_answered_request_and_the_next_run_starts_a_fresh_line() {
    let dir = temp_dir("mock-kill");
    let journal = dir.join("journal.jsonl");
    let mut mock = start(&journal);

    // Eight clients POST 512 KiB bodies until 24 answers came back, then kill -9.
    let answered = Arc::new(Mutex::new(Vec::<u64>::new()));
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let (client, url, answered) = (client.clone(), mock.url.clone(), Arc::clone(&answered));
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let res = client
                    .post(format!("{url}/hook"))
                    .header("content-type", "application/json")
                    .header("user-agent", "skilljar")
                    .body(big_payload(t * 1000 + i, 512 * 1024))
                    .send()
                    .await;
                let Ok(res) = res else { return };
                let Ok(answer) = res.json::<Value>().await else {
                    return;
                };
                answered
                    .lock()
                    .unwrap()
                    .push(answer["seq"].as_u64().unwrap());
            }
        }));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while answered.lock().unwrap().len() < 24 {
        assert!(
            std::time::Instant::now() < deadline,
            "the mock answered too few requests"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    mock.child.kill().unwrap(); // SIGKILL
    mock.child.wait().unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let answered = answered.lock().unwrap().clone();

    let bytes = std::fs::read(&journal).unwrap();
    let (complete, torn) = lines(&bytes);
    let mut journaled = Vec::new();
    for l in &complete {
        let v: Value = serde_json::from_slice(l).expect("every complete line is JSON");
        journaled.push(v["seq"].as_u64().unwrap());
    }
    for seq in &answered {
        assert!(
            journaled.contains(seq),
            "request #{seq} was answered but is not in the journal (journaled: {journaled:?})"
        );
    }
    eprintln!(
        "{} answered, {} journaled, kill tore the last line: {}",
        answered.len(),
        journaled.len(),
        !torn.is_empty()
    );
    // A kill lands inside a write only some of the time; when this one did not, tear
    // the last line the way it would have, so the restart below always meets one.
    if torn.is_empty() {
        let last = complete.last().expect("at least one line").len() as u64;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&journal)
            .unwrap();
        file.set_len(bytes.len() as u64 - last / 2 - 1).unwrap();
    }

    // The next run appends to the same file: its first line must not be glued to the
    // fragment.
    let mut mock = start(&journal);
    let small = big_payload(999_999, 10);
    let res = client
        .post(format!("{}/again", mock.url))
        .header("content-type", "application/json")
        .header("user-agent", "skilljar")
        .body(small.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    mock.child.kill().unwrap();
    mock.child.wait().unwrap();

    let bytes = std::fs::read(&journal).unwrap();
    let (complete, rest) = lines(&bytes);
    assert!(rest.is_empty(), "the new run's line is complete");
    let bad: Vec<usize> = complete
        .iter()
        .enumerate()
        .filter(|(_, l)| serde_json::from_slice::<Value>(l).is_err())
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(
        bad.len(),
        1,
        "only the torn fragment is unreadable, on a line of its own (unreadable lines: {bad:?})"
    );
    let last: Value = serde_json::from_slice(complete.last().unwrap()).unwrap();
    assert_eq!(last["path"], "/again");
    assert_eq!(last["body"], small);
    std::fs::remove_dir_all(&dir).unwrap();
}
