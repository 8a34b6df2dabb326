//! `hookjar replay`: send a folder of fixtures, or a mock journal, to a URL.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use hookjar_core::{DeliveryRequest, Event, Payload, RetryPolicy};
use hookjar_dispatch::deliver::{MAX_REDIRECTS, Sender};
use serde_json::Value;

use super::flags::SendFlags;
use super::util::{Paint, color_stderr, color_stdout, paint, parse_target_url, runtime, wall_now};
use crate::exit::{self, bad_input};

/// Send every fixture in a folder, one event file, or every request of a mock
/// journal, to a URL, in order, and print one line per request and a summary.
///
/// PATH is a folder (every *.json file in name order, each one event object), one
/// event file (an event object, pretty-printed or not), each sent with a fresh
/// timestamp unless --keep-timestamps; or a JSONL journal written by `hookjar mock
/// --journal FILE`, whose recorded bodies are resent byte for byte, so the receiver
/// sees the same digests. A torn journal line (a write cut short by a crash) is
/// skipped with a warning naming the file and line, and the rest is replayed.
///
/// Exit code 0 when every answer is a 2xx, 1 when one is not, 2 when PATH holds
/// nothing to send or a bad value is given, 3 when PATH cannot be read.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A folder of event JSON files (e.g. fixtures/events), one event file, or a mock
    /// journal (.jsonl).
    pub path: PathBuf,
    /// Where to send them.
    #[arg(long, value_name = "URL", value_parser = parse_target_url)]
    pub to: String,
    #[command(flatten)]
    pub send: SendFlags,
    /// Keep the timestamps in event files instead of stamping each send afresh.
    #[arg(long)]
    pub keep_timestamps: bool,
    /// Journal only: send each request to its recorded path and query on --to's host,
    /// instead of to --to's own path.
    #[arg(long)]
    pub keep_paths: bool,
    /// Journal only: send each request with its recorded headers (except Host,
    /// Content-Length and hop-by-hop ones) instead of Skilljar's; -H and --basic-auth
    /// still apply on top.
    #[arg(long)]
    pub keep_headers: bool,
}

/// One thing to send: where it came from, its bytes, and for a journal entry the
/// path and headers it was recorded with.
#[derive(Debug)]
pub struct Item {
    pub source: String,
    pub payload: Payload,
    pub path: Option<String>,
    pub headers: Option<Vec<(String, String)>>,
}

/// What PATH holds, and the warnings about lines that were skipped.
#[derive(Debug, Default)]
pub struct Loaded {
    pub items: Vec<Item>,
    pub warnings: Vec<String>,
}

/// Reads one event object from `text` (pretty-printed or not).
fn event_item(source: &Path, text: &str, keep_timestamps: bool) -> anyhow::Result<Item> {
    let mut event = Event::from_json(text)
        .map_err(|e| bad_input(format!("{} is not an event payload: {e}", source.display())))?;
    if !keep_timestamps {
        event = event.restamped(wall_now());
    }
    Ok(Item {
        source: source.display().to_string(),
        payload: event.to_payload(),
        path: None,
        headers: None,
    })
}

/// What replay takes from a journal entry.
struct Entry {
    body: String,
    path: Option<String>,
    headers: Option<Vec<(String, String)>>,
}

/// A journal entry: its body, path and headers.
fn journal_entry(v: &Value) -> Option<Entry> {
    let body = v.get("body")?.as_str()?.to_owned();
    let path = v.get("path").and_then(Value::as_str).map(str::to_owned);
    let headers = v.get("headers").and_then(Value::as_array).map(|hs| {
        hs.iter()
            .filter_map(|h| {
                let pair = h.as_array()?;
                Some((
                    pair.first()?.as_str()?.to_owned(),
                    pair.get(1)?.as_str()?.to_owned(),
                ))
            })
            .collect()
    });
    Some(Entry {
        body,
        path,
        headers,
    })
}

/// Reads PATH into the payloads to send, in order.
pub fn load(path: &Path, keep_timestamps: bool) -> anyhow::Result<Loaded> {
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("cannot list {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(bad_input(format!(
                "{} has no *.json files to replay",
                path.display()
            )));
        }
        let items = files
            .into_iter()
            .map(|f| {
                let text = std::fs::read_to_string(&f)
                    .with_context(|| format!("cannot read {}", f.display()))?;
                event_item(&f, &text, keep_timestamps)
            })
            .collect::<anyhow::Result<_>>()?;
        return Ok(Loaded {
            items,
            warnings: Vec::new(),
        });
    }
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read {} (give a folder of *.json, one event file or a journal .jsonl)",
            path.display()
        )
    })?;
    // One event object, e.g. a pretty-printed `hookjar fixtures show` output.
    if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(&text) {
        if !map.contains_key("body") {
            return Ok(Loaded {
                items: vec![event_item(path, &text, keep_timestamps)?],
                warnings: Vec::new(),
            });
        }
    }
    let mut loaded = Loaded::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = format!("{}:{}", path.display(), i + 1);
        let parsed = serde_json::from_str::<Value>(line).ok();
        let entry = match &parsed {
            Some(v) => Some(journal_entry(v).ok_or_else(|| {
                bad_input(format!(
                    "{at}: not a mock journal entry (it has no \"body\" string); give a journal written by `hookjar mock --journal FILE`"
                ))
            })?),
            None => {
                // A torn line: a write cut short (kill -9), maybe with the next run's
                // first line glued to it. Keep a complete entry glued after the tear.
                let glued = line
                    .match_indices("{\"")
                    .filter(|(i, _)| *i > 0)
                    .find_map(|(i, _)| {
                        serde_json::from_str::<Value>(&line[i..])
                            .ok()
                            .as_ref()
                            .and_then(journal_entry)
                    });
                loaded.warnings.push(format!(
                    "{at}: a torn journal line (a write cut short, e.g. by kill -9) was skipped{}",
                    if glued.is_some() {
                        "; the complete request glued after it is replayed"
                    } else {
                        ""
                    }
                ));
                glued
            }
        };
        if let Some(e) = entry {
            loaded.items.push(Item {
                source: at,
                payload: Payload::from_bytes(e.body.into_bytes()),
                path: e.path,
                headers: e.headers,
            });
        }
    }
    if loaded.items.is_empty() {
        return Err(bad_input(format!(
            "{} holds no journal entries to replay",
            path.display()
        )));
    }
    Ok(loaded)
}

/// Headers a resent request must not copy: the client sets them, or they describe
/// one hop only.
fn is_managed_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "host"
            | "content-length"
            | "connection"
            | "transfer-encoding"
            | "keep-alive"
            | "te"
            | "upgrade"
            | "expect"
            | "trailer"
    ) || n.starts_with("proxy-")
}

/// `--to`'s scheme and authority with `path` (which carries its query).
fn on_host(to: &str, path: &str) -> String {
    match url::Url::parse(to) {
        Ok(u) => format!("{}{}", u.origin().ascii_serialization(), path),
        Err(_) => to.to_owned(),
    }
}

/// The request for one item, as the flags ask.
fn request_for(
    args: &Args,
    headers: &hookjar_core::webhook::Headers,
    item: &Item,
) -> DeliveryRequest {
    let (u, p) = args.send.auth();
    let url = match (&item.path, args.keep_paths) {
        (Some(path), true) => on_host(&args.to, path),
        _ => args.to.clone(),
    };
    let mut req = DeliveryRequest::new(url, &u, &p, headers, item.payload.clone());
    if let (Some(recorded), true) = (&item.headers, args.keep_headers) {
        let mut kept: Vec<(String, String)> = recorded
            .iter()
            .filter(|(k, _)| !is_managed_header(k))
            .cloned()
            .collect();
        // -H and --basic-auth win over what was recorded.
        let given: Vec<(String, String)> = req
            .headers
            .iter()
            .filter(|(k, _)| {
                headers.contains_key(k)
                    || (k.eq_ignore_ascii_case("authorization") && args.send.basic_auth.is_some())
            })
            .cloned()
            .collect();
        kept.retain(|(k, _)| !given.iter().any(|(g, _)| g.eq_ignore_ascii_case(k)));
        kept.extend(given);
        req.headers = kept;
    }
    req
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Loaded { items, warnings } = load(&args.path, args.keep_timestamps)?;
    let color_err = color_stderr();
    for w in &warnings {
        eprintln!("{} {w}", paint("warning:", Paint::Warn, color_err));
    }
    let color = color_stdout();
    let headers = args.send.header_map()?;
    let sender = Sender::one_connection_per_request(args.send.timeout, MAX_REDIRECTS)?;
    let policy = RetryPolicy::default();
    let rt = runtime()?;
    let (mut ok, mut failed) = (0usize, 0usize);
    for item in &items {
        let req = request_for(&args, &headers, item);
        let sent = rt.block_on(sender.send(&req));
        let event_type = serde_json::from_slice::<Value>(item.payload.bytes())
            .ok()
            .and_then(|v| {
                v.get("event_type")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "?".to_owned());
        let is_ping = event_type == hookjar_core::payload::PING;
        // A ping succeeds on a 2xx and is otherwise never retried (S13); either way
        // the POST itself must be answered (a 301/302/303 makes a bodiless GET, S18).
        let delivered = sent.downgraded.is_none()
            && if is_ping {
                hookjar_core::verdict::ping_answer(&sent.outcome, None).0
            } else {
                policy.classify(&sent.outcome, 0) == hookjar_core::Verdict::Delivered
            };
        if delivered {
            ok += 1;
        } else {
            failed += 1;
        }
        println!(
            "{} {:<24} {} {:>6}ms  {}{}  ({})",
            if delivered {
                paint("ok  ", Paint::Good, color)
            } else {
                paint("FAIL", Paint::Bad, color)
            },
            event_type,
            item.payload.digest(),
            sent.latency.as_millis(),
            sent.outcome,
            if delivered {
                String::new()
            } else {
                format!(" — {}", super::send::explain(&policy, &sent, is_ping))
            },
            item.source
        );
    }
    println!(
        "{ok} delivered, {failed} not delivered, {} sent to {}{}",
        items.len(),
        args.to,
        if warnings.is_empty() {
            String::new()
        } else {
            format!(" ({} torn journal line(s) skipped)", warnings.len())
        }
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::FAILED)
    })
}
