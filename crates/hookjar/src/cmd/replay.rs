//! `hookjar replay`: send a folder of fixtures, or a mock journal, to a URL.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use hookjar_core::{DeliveryRequest, Event, Payload, RetryPolicy};
use hookjar_dispatch::deliver::{MAX_REDIRECTS, Sender};
use serde_json::Value;

use super::flags::SendFlags;
use super::util::{parse_target_url, runtime, wall_now};
use crate::exit;

/// Send every fixture in a folder, or every request of a mock journal, to a URL, in
/// order, and print one line per request and a summary.
///
/// PATH is a folder (every *.json file in name order, each one event object, sent with
/// a fresh timestamp unless --keep-timestamps) or a JSONL journal written by
/// `hookjar mock --journal FILE` (each recorded body is resent byte for byte, so the
/// receiver sees the same digests). Exit code 0 when every answer is a 2xx.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A folder of event JSON files (e.g. fixtures/events) or a mock journal (.jsonl).
    pub path: PathBuf,
    /// Where to send them.
    #[arg(long, value_name = "URL", value_parser = parse_target_url)]
    pub to: String,
    #[command(flatten)]
    pub send: SendFlags,
    /// Keep the timestamps in fixture files instead of stamping each send afresh.
    #[arg(long)]
    pub keep_timestamps: bool,
}

/// One thing to send: where it came from and its bytes.
#[derive(Debug)]
pub struct Item {
    pub source: String,
    pub payload: Payload,
}

/// Reads PATH into the payloads to send, in order.
pub fn load(path: &Path, keep_timestamps: bool) -> anyhow::Result<Vec<Item>> {
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("cannot list {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        if files.is_empty() {
            anyhow::bail!("{} has no *.json files to replay", path.display());
        }
        files
            .into_iter()
            .map(|f| {
                let text = std::fs::read_to_string(&f)
                    .with_context(|| format!("cannot read {}", f.display()))?;
                let mut event = Event::from_json(&text)
                    .with_context(|| format!("{} is not an event payload", f.display()))?;
                if !keep_timestamps {
                    event = event.restamped(wall_now());
                }
                Ok(Item {
                    source: f.display().to_string(),
                    payload: event.to_payload(),
                })
            })
            .collect()
    } else {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read {} (give a folder of *.json or a journal .jsonl)",
                path.display()
            )
        })?;
        let mut items = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let at = format!("{}:{}", path.display(), i + 1);
            let v: Value = serde_json::from_str(line)
                .with_context(|| format!("{at}: not a JSON line of a mock journal"))?;
            let body = v
                .get("body")
                .and_then(Value::as_str)
                .with_context(|| format!("{at}: the journal entry has no \"body\" string"))?;
            items.push(Item {
                source: at,
                payload: Payload::from_bytes(body.as_bytes().to_vec()),
            });
        }
        if items.is_empty() {
            anyhow::bail!("{} holds no journal entries", path.display());
        }
        Ok(items)
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let items = load(&args.path, args.keep_timestamps)?;
    let (u, p) = args.send.auth();
    let headers = args.send.header_map();
    let sender = Sender::new(args.send.timeout, MAX_REDIRECTS)?;
    let policy = RetryPolicy::default();
    let rt = runtime()?;
    let (mut ok, mut failed) = (0usize, 0usize);
    for item in &items {
        let req = DeliveryRequest::new(args.to.clone(), &u, &p, &headers, item.payload.clone());
        let sent = rt.block_on(sender.send(&req));
        let event_type = serde_json::from_slice::<Value>(item.payload.bytes())
            .ok()
            .and_then(|v| {
                v.get("event_type")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "?".to_owned());
        let delivered = policy.classify(&sent.outcome, 0) == hookjar_core::Verdict::Delivered;
        if delivered {
            ok += 1;
        } else {
            failed += 1;
        }
        println!(
            "{:<4} {:<24} {} {:>6}ms  {}{}  ({})",
            if delivered { "ok" } else { "FAIL" },
            event_type,
            item.payload.digest(),
            sent.latency.as_millis(),
            sent.outcome,
            if delivered {
                String::new()
            } else {
                format!(" — {}", policy.explain(&sent.outcome))
            },
            item.source
        );
    }
    println!(
        "{ok} delivered, {failed} not delivered, {} sent to {}",
        items.len(),
        args.to
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::FAILED)
    })
}
