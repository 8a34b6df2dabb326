//! `hookjar send`: one delivery exactly as Skilljar sends it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use hookjar_core::{DeliveryRequest, Event, EventType, RetryPolicy};
use hookjar_dispatch::deliver::{MAX_REDIRECTS, Sender};
use serde_json::json;

use super::flags::SendFlags;
use super::util::{Format, Paint, color_stdout, paint, parse_target_url, runtime, wall_now};
use crate::exit;

/// Send one event to a URL exactly as Skilljar would, then print the request, the
/// answer and what Skilljar would do with it.
///
/// EVENT is an event type (COURSE_ENROLLMENT, course-enrollment, PING) whose fixture is
/// sent, or a JSON file holding one event object. The timestamp is fresh on every send
/// unless --keep-timestamp. A PING is judged as Skilljar's ping call judges it (S13:
/// never retried, never deactivates). Redirects are shown hop by hop. Exit code 0
/// when the endpoint answered the POST itself with a 2xx, 1 for any other answer (a
/// 2xx reached only through a 301/302/303, which drops the body, included), 2 for a
/// bad type, file or flag, 3 when the file cannot be read.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// An event type, PING, or a JSON file with one event.
    #[arg(value_name = "TYPE|FILE")]
    pub event: String,
    /// Where to send it.
    #[arg(long, value_name = "URL", value_parser = parse_target_url)]
    pub to: String,
    /// Change a field of the payload: path=value with a dotted path, e.g.
    /// user.email=ada@example.com or course.id=42 (values that parse as JSON are JSON,
    /// others are strings). Repeatable.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub sets: Vec<String>,
    #[command(flatten)]
    pub send: SendFlags,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Keep the timestamp of the FILE instead of stamping it now.
    #[arg(long)]
    pub keep_timestamp: bool,
}

/// Reads TYPE|FILE into an event stamped now (a file's own timestamp is kept with
/// `keep_timestamp`).
pub fn load_event(spec: &str, keep_timestamp: bool) -> anyhow::Result<Event> {
    if spec.eq_ignore_ascii_case("ping") {
        return Ok(Event::ping(wall_now()));
    }
    if let Ok(t) = spec.parse::<EventType>() {
        return Ok(Event::fixture(t, wall_now()));
    }
    let path = PathBuf::from(spec);
    if !path.exists() {
        return Err(crate::exit::bad_input(format!(
            "{spec:?} is neither an event type ({}, their kebab names, PING) nor an existing file",
            EventType::valid_names()
        )));
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let event = Event::from_json(&text).map_err(|e| {
        crate::exit::bad_input(format!("{} is not an event payload: {e}", path.display()))
    })?;
    Ok(if keep_timestamp {
        event
    } else {
        event.restamped(wall_now())
    })
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut event = load_event(&args.event, args.keep_timestamp)?;
    for s in &args.sets {
        event
            .set(s)
            .map_err(|e| crate::exit::bad_input(format!("--set {s}: {e}")))?;
    }
    let (u, p) = args.send.auth();
    let headers = args.send.header_map()?;
    let request = DeliveryRequest::new(args.to.clone(), &u, &p, &headers, event.to_payload());
    let sender = Sender::one_connection_per_request(args.send.timeout, MAX_REDIRECTS)?;
    if args.keep_timestamp && !hookjar_core::payload::is_iso8601_timestamp(&event.timestamp) {
        eprintln!(
            "warning: the timestamp {:?} is not ISO 8601 with an offset; Skilljar always sends one such as 2015-02-13T18:57:55.066475+00:00 (S11), so this request is not one Skilljar would send",
            event.timestamp
        );
    }
    let is_ping = event.event_type == hookjar_core::payload::PING;
    let sent = runtime()?.block_on(sender.send(&request));
    let policy = RetryPolicy::default();
    let verdict = policy.classify(&sent.outcome, 0);
    let ping = is_ping.then(|| hookjar_core::verdict::ping_answer(&sent.outcome, sent.downgraded));
    // The endpoint got the event: a 2xx to the POST itself (a 2xx to the GET a
    // 301/302/303 made of it comes without the event, S18).
    let ok = sent.downgraded.is_none()
        && match &ping {
            Some((succeeded, _)) => *succeeded,
            None => verdict == hookjar_core::Verdict::Delivered,
        };
    let explanation = explain(&policy, &sent, is_ping);
    let body_text = String::from_utf8_lossy(request.body.bytes()).into_owned();
    match args.format {
        Format::Json => {
            let doc = json!({
                "request": {
                    "method": DeliveryRequest::METHOD,
                    "url": request.url,
                    "headers": request.headers.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
                    "body": serde_json::from_str::<serde_json::Value>(&body_text).unwrap_or_default(),
                    "digest": request.body.digest().to_string(),
                },
                "response": {
                    "outcome": sent.outcome,
                    "latency_ms": sent.latency.as_millis() as u64,
                    "body": sent.body,
                    "redirects": sent.hops.iter().map(|h| json!({
                        "status": h.status,
                        "to": h.to,
                        "post_became_get": h.to_get,
                        "authorization_dropped": h.auth_dropped,
                    })).collect::<Vec<_>>(),
                },
                // A ping has no verdict: it is never retried and never deactivates
                // (S13); what the API's ping call would answer is under `ping`.
                "verdict": if is_ping { serde_json::Value::Null } else { json!(verdict) },
                "ping": ping.as_ref().map(|(succeeded, message)| json!({
                    "succeeded": succeeded,
                    "http_status_code": sent.outcome.status_code(),
                    "message": message,
                })),
                "delivered": ok,
                "explanation": explanation,
            });
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        Format::Table => {
            println!("> {} {}", DeliveryRequest::METHOD, request.url);
            for (k, v) in &request.headers {
                println!("> {k}: {v}");
            }
            println!(">");
            println!("> {body_text}");
            println!();
            for hop in &sent.hops {
                println!(
                    "< HTTP {} redirect to {}{}{}",
                    hop.status,
                    hop.to,
                    if hop.to_get {
                        " (followed as a GET without the body)"
                    } else {
                        ""
                    },
                    if hop.auth_dropped {
                        " (Authorization dropped: another scheme, host or port)"
                    } else {
                        ""
                    }
                );
            }
            println!("< {} in {}ms", sent.outcome, sent.latency.as_millis());
            if !sent.body.is_empty() {
                println!("< {}", sent.body.trim_end());
            }
            println!();
            let color = color_stdout();
            let tone = if ok { Paint::Good } else { Paint::Bad };
            let (label, summary) = match &ping {
                Some((true, _)) => ("ping:", "succeeded".to_owned()),
                Some((false, _)) => ("ping:", "failed".to_owned()),
                None => ("verdict:", policy.describe(&sent.outcome, 0)),
            };
            println!(
                "{} {} — {explanation}",
                paint(label, tone, color),
                paint(&summary, tone, color),
            );
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::FAILED)
    })
}

/// What Skilljar would do with this answer, in words: S13 for a ping, the retry
/// policy for an event; and what a redirect changed on the way (S18).
pub(crate) fn explain(
    policy: &RetryPolicy,
    sent: &hookjar_dispatch::deliver::Sent,
    ping: bool,
) -> String {
    let mut text = if ping {
        hookjar_core::verdict::ping_answer(&sent.outcome, sent.downgraded).1
    } else {
        policy.explain(&sent.outcome)
    };
    if !ping {
        if let Some(code) = sent.downgraded {
            text.push_str(&format!(
                "; but a {code} redirect turned the POST into a GET without the body, so your endpoint never got the event (S18): answer at the final URL, or redirect with 307/308"
            ));
        }
    }
    let auth_refused = matches!(sent.outcome.status_code(), Some(401 | 403));
    if auth_refused && sent.hops.iter().any(|h| h.auth_dropped) {
        text.push_str(
            "; the redirect to another scheme, host or port dropped the Authorization header (Python's requests does the same), which is likely why the answer refused it",
        );
    }
    text
}
