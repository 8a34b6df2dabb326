//! `hookjar emit`: emit an event through a running dispatcher (X1, issue #4).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use hookjar_core::{Event, EventType};
use serde_json::{Map, Value};

use crate::exit;

/// Emit an event through a running `hookjar serve` (its flags; the long help is `AFTER_HELP`).
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// The event type, e.g. COURSE_ENROLLMENT or course-enrollment.
    #[arg(value_name = "TYPE")]
    pub event_type: EventType,
    /// A JSON file whose top-level keys replace the fixture's.
    #[arg(long, value_name = "FILE")]
    pub data: Option<PathBuf>,
    /// Set one field, PATH=VALUE; the value is read as JSON when it parses, else as
    /// text. Repeatable.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub set: Vec<String>,
    /// The dispatcher's URL.
    #[arg(
        long,
        env = "HOOKJAR_SERVER",
        hide_env_values = true,
        default_value = "http://127.0.0.1:8750",
        value_parser = super::util::parse_server_url
    )]
    pub server: String,
    /// The dispatcher's API key (printed by `hookjar serve` when it generated one).
    #[arg(long, env = "HOOKJAR_API_KEY", hide_env_values = true)]
    pub api_key: String,
    /// Print the dispatcher's JSON answer instead of a sentence.
    #[arg(long)]
    pub json: bool,
}

/// Shown under the flags (the command's one-line summary lives in `main.rs`).
const AFTER_HELP: &str = "\
The event is the type's fixture (see `hookjar fixtures`) with a fresh timestamp; the dispatcher
delivers it to every active webhook whose event_type matches or is blank, once per target URL.

Examples:
  hookjar emit COURSE_ENROLLMENT --api-key k
  hookjar emit course-completion --set user.email=ada@example.com --set course.title='Intro'
  hookjar emit PURCHASE_FULFILLMENT --data purchase.json --server http://127.0.0.1:8750

Prints the event id and how many deliveries were queued; see each attempt with
  curl -u KEY: http://127.0.0.1:8750/v1/webhooks/WEBHOOK_ID/deliveries

Exit code 0 when the dispatcher queued the event, 1 when it refused it (any non-2xx
answer: a wrong API key, a refused event), 2 for a bad type, file or flag, 3 when the
dispatcher cannot be reached or --data cannot be read.";

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let event_type = args.event_type;
    let body = build_body(event_type, args.data.as_deref(), &args.set)?;
    let url = format!("{}/v1/events", args.server.trim_end_matches('/'));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (status, text) = runtime.block_on(async {
        let client = reqwest::Client::new();
        let response = client
            .post(&url)
            .basic_auth(&args.api_key, Some(""))
            .json(&body)
            .send()
            .await
            .map_err(|e| unreachable_error(&args.server, &e))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        anyhow::Ok((status, text))
    })?;

    match status.as_u16() {
        202 => {
            let answer: Value = serde_json::from_str(&text).with_context(|| {
                format!("the dispatcher answered 202 with a body that is not JSON: {text}")
            })?;
            if args.json {
                println!("{answer}");
            } else {
                let n = answer["deliveries"].as_u64().unwrap_or(0);
                println!(
                    "event {} ({event_type}): {n} {} queued",
                    answer["event"].as_str().unwrap_or("?"),
                    if n == 1 { "delivery" } else { "deliveries" }
                );
                if n == 0 {
                    println!(
                        "(no active webhook takes {event_type}; create one with POST /v1/webhooks)"
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        401 => {
            eprintln!(
                "error: the dispatcher at {} refused the API key (401: {}). Pass the key `hookjar serve` uses with --api-key or HOOKJAR_API_KEY.",
                args.server,
                detail(&text)
            );
            Ok(ExitCode::from(exit::FAILED))
        }
        400 => {
            eprintln!("error: the dispatcher refused the event (400): {text}");
            Ok(ExitCode::from(exit::FAILED))
        }
        404 => {
            eprintln!(
                "error: {url} answered 404: is {} a hookjar dispatcher (hookjar serve)? POST /v1/events is a hookjar extension, not part of Skilljar's API",
                args.server
            );
            Ok(ExitCode::from(exit::FAILED))
        }
        code => {
            eprintln!("error: the dispatcher answered HTTP {code}: {text}");
            Ok(ExitCode::from(exit::FAILED))
        }
    }
}

/// The `{"event_type": T, …}` body: only the type when nothing is overridden (the
/// dispatcher uses its fixture); otherwise the fixture's objects with --data merged at
/// the top level and --set applied (core's `Event::merge_top_level` and `Event::set`),
/// sent whole so nested --set paths survive the dispatcher's top-level merge.
fn build_body(
    event_type: EventType,
    data: Option<&std::path::Path>,
    sets: &[String],
) -> anyhow::Result<Value> {
    let mut body = Map::new();
    body.insert(
        "event_type".into(),
        Value::String(event_type.as_str().into()),
    );
    if data.is_none() && sets.is_empty() {
        return Ok(Value::Object(body));
    }
    // The timestamp is the dispatcher's to set; this one is never sent.
    let mut event = Event::fixture(event_type, time::OffsetDateTime::UNIX_EPOCH);
    if let Some(path) = data {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read --data {}", path.display()))?;
        let value: Value = serde_json::from_str(&text).map_err(|e| {
            exit::bad_input(format!("--data {} is not valid JSON: {e}", path.display()))
        })?;
        if let Some(literal) = hookjar_core::payload::wide_integer(&text) {
            return Err(exit::bad_input(format!(
                "--data {}: {literal} is an integer beyond 64 bits, which hookjar cannot send \
                 exactly (it would become a float); write it as a string",
                path.display()
            )));
        }
        let Value::Object(map) = value else {
            return Err(exit::bad_input(format!(
                "--data {} must hold a JSON object of top-level keys (such as \"user\"), not {}",
                path.display(),
                hookjar_core::payload::json_kind(&value)
            )));
        };
        if let Some(t) = map.get("event_type").and_then(Value::as_str) {
            if t != event_type.as_str() {
                return Err(exit::bad_input(format!(
                    "--data {} says event_type {t:?} but TYPE is {event_type}",
                    path.display()
                )));
            }
        }
        event.merge_top_level(map);
    }
    for assignment in sets {
        event
            .set(assignment)
            .map_err(|e| exit::bad_input(format!("--set {assignment}: {e}")))?;
    }
    body.extend(event.data);
    Ok(Value::Object(body))
}

fn unreachable_error(server: &str, e: &reqwest::Error) -> anyhow::Error {
    if e.is_connect() {
        anyhow::anyhow!(
            "cannot reach the dispatcher at {server}: connection refused or unreachable. Is `hookjar serve` running there? (set --server or HOOKJAR_SERVER)"
        )
    } else if e.is_timeout() {
        anyhow::anyhow!("the dispatcher at {server} did not answer in time")
    } else {
        anyhow::anyhow!("cannot send the event to {server}: {e}")
    }
}

fn detail(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v["detail"].as_str().map(str::to_owned))
        .unwrap_or_else(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_only_sends_the_type() {
        let b = build_body(EventType::CourseEnrollment, None, &[]).unwrap();
        assert_eq!(b, serde_json::json!({"event_type": "COURSE_ENROLLMENT"}));
    }

    #[test]
    fn set_changes_one_nested_field_and_keeps_the_rest() {
        let b = build_body(
            EventType::CourseEnrollment,
            None,
            &["user.email=ada@example.com".into()],
        )
        .unwrap();
        assert_eq!(b["user"]["email"], "ada@example.com");
        assert!(b["user"]["first_name"].is_string());
        assert!(b["course"].is_object());
        assert!(b.get("timestamp").is_none());
        assert!(build_body(EventType::CourseEnrollment, None, &["timestamp=1".into()]).is_err());
    }

    /// An integer beyond 64 bits, in --data or --set, is refused rather than sent as
    /// the float serde_json would read it as.
    #[test]
    fn integers_beyond_64_bits_are_refused_not_altered() {
        let dir = std::env::temp_dir().join(format!("hookjar-emit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let data = dir.join("wide.json");
        std::fs::write(&data, r#"{"user": {"id": 123456789012345678901234567890}}"#).unwrap();
        let err = build_body(EventType::CourseEnrollment, Some(&data), &[]).unwrap_err();
        assert!(
            format!("{err:#}")
                .contains("123456789012345678901234567890 is an integer beyond 64 bits"),
            "{err:#}"
        );
        let err = build_body(
            EventType::CourseEnrollment,
            None,
            &["user.id=123456789012345678901234567890".into()],
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("beyond 64 bits"), "{err:#}");
        std::fs::write(&data, r#"{"user": {"id": 18446744073709551615}}"#).unwrap();
        let b = build_body(EventType::CourseEnrollment, Some(&data), &[]).unwrap();
        assert_eq!(b["user"]["id"], serde_json::json!(u64::MAX));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
