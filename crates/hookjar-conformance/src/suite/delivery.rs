//! Delivery cases: S7 request, S8 basic auth, S9 headers, S10 event types, S11 payload,
//! S12 fan-out, S13 ping (and X1 emit, observed with S7).

use std::collections::BTreeSet;
use std::time::Duration;

use hookjar_core::EventType;
use hookjar_mock::{Script, ScriptUpdate};
use serde_json::{Value, json};

use super::context::{Ctx, header};
use super::{CaseError, CaseOutput};
use crate::report::{CaseResult, Status};

pub(super) async fn s7_request(ctx: &mut Ctx) -> CaseOutput {
    ctx.create(json!({
        "target_url": ctx.mock_url("/ok"),
        "event_type": "COURSE_ENROLLMENT",
        "basic_auth_username": "hookjar-user",
        "basic_auth_password": "hookjar-pass",
        "additional_headers": {"x-hookjar-client": "conformance", "client_id": "examplestring2"}
    }))
    .await?;
    let emitted = ctx.emit(EventType::CourseEnrollment, json!({})).await?;
    let emitted_at = tokio::time::Instant::now();
    let emit = CaseResult::check(
        "X1.emit",
        "X1",
        emitted["event"].is_string() && emitted["deliveries"].as_u64().is_some_and(|n| n >= 1),
        "202 {\"event\": id, \"deliveries\": n} (n ≥ 1: the suite's webhook, plus any the server already had)",
        emitted.to_string(),
    );
    let reqs = ctx.wait(1, Duration::from_secs(10)).await;
    let Some(r) = reqs.first() else {
        return Err(CaseError("no POST reached the receiver within 10 s".into()));
    };
    // Calibration for the timing checks: how long a due attempt takes to arrive.
    ctx.overhead = r
        .arrived
        .saturating_duration_since(emitted_at)
        .min(Duration::from_millis(100));
    let ct = header(r, "content-type").unwrap_or("");
    let ua = header(r, "user-agent").unwrap_or("");
    let auth = header(r, "authorization").unwrap_or("");
    let expected_auth = hookjar_core::request::basic_auth_header("hookjar-user", "hookjar-pass")
        .unwrap_or_default();
    let json = r.json.clone().unwrap_or(Value::Null);
    let keys: Vec<String> = json
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let ts_ok = json["timestamp"]
        .as_str()
        .is_some_and(|t| hookjar_core::payload::parse_timestamp(t).is_ok());
    let lacking = lacking_confirmed(&json, CONFIRMED_OBJECTS);
    // X5: headers beyond what Skilljar's client (Python `requests`) sends, S7–S9's and
    // the webhook's own. A warning, never a failure: a correct dispatcher on another
    // HTTP stack sends its client's own headers.
    let extra: Vec<&str> = r
        .headers
        .iter()
        .map(|(name, _)| name.as_str())
        .filter(|name| {
            !SKILLJAR_CLIENT_HEADERS.contains(name)
                && !["x-hookjar-client", "client_id"].contains(name)
        })
        .collect();
    let no_extra = CaseResult::new(
        "X5.no-extra-headers",
        "X5",
        if extra.is_empty() {
            Status::Pass
        } else {
            Status::Warn
        },
        format!(
            "no header but Skilljar's ({}) and the webhook's own (a warning, not a failure: other HTTP clients add their own)",
            SKILLJAR_CLIENT_HEADERS.join(", ")
        ),
        if extra.is_empty() {
            "none other".to_owned()
        } else {
            format!("also {}", extra.join(", "))
        },
    );
    Ok(vec![
        emit,
        CaseResult::check(
            "S7.method",
            "S7",
            r.method == "POST",
            "POST",
            r.method.clone(),
        ),
        CaseResult::check(
            "S7.content-type",
            "S7",
            ct == "application/json",
            "Content-Type: application/json",
            format!("{ct:?}"),
        ),
        CaseResult::check(
            "S7.user-agent",
            "S7",
            ua == "skilljar",
            "User-Agent: skilljar",
            format!("{ua:?}"),
        ),
        CaseResult::check(
            "S7.single-object",
            "S7",
            json.is_object(),
            "the body is one JSON object",
            match &json {
                Value::Object(m) => format!("one JSON object with {} keys", m.len()),
                _ => format!("{:.80}", r.body),
            },
        ),
        CaseResult::check(
            "S8.basic-auth",
            "S8",
            auth == expected_auth,
            format!("Authorization: {expected_auth}"),
            format!("{auth:?}"),
        ),
        CaseResult::check(
            "S9.additional-headers",
            "S9",
            header(r, "x-hookjar-client") == Some("conformance")
                && header(r, "client_id") == Some("examplestring2"),
            "x-hookjar-client: conformance and client_id: examplestring2, verbatim",
            format!(
                "x-hookjar-client {:?}, client_id {:?}",
                header(r, "x-hookjar-client"),
                header(r, "client_id")
            ),
        ),
        CaseResult::check(
            "S11.payload",
            "S11",
            keys.first().map(String::as_str) == Some("event_type")
                && keys.get(1).map(String::as_str) == Some("timestamp")
                && json["event_type"] == "COURSE_ENROLLMENT"
                && ts_ok
                && json["user"].is_object()
                && json["course"].is_object()
                && json["domain"].is_object()
                && json["purchase"].is_object()
                && lacking.is_empty()
                && json.get("id").is_none(),
            "flat object: event_type, timestamp (ISO 8601, µs, +00:00), then user (id, email, first_name, last_name), course (id, published_course_id, title, url), domain (id, name), purchase (order_id, original_price, purchase_price, currency_code, payment_processor) — Skilljar's COURSE_ENROLLMENT sample —, …; no event id",
            if lacking.is_empty() {
                format!("keys {keys:?}, timestamp {}", json["timestamp"])
            } else {
                format!(
                    "keys {keys:?}, timestamp {}; lacks {}",
                    json["timestamp"],
                    lacking.join(", ")
                )
            },
        ),
        no_extra,
    ])
}

/// The fields of S11's objects that Skilljar's published COURSE_ENROLLMENT sample
/// confirms.
const CONFIRMED_OBJECTS: &[&str] = &["user", "course", "domain", "purchase"];

/// The confirmed fields of `object` (S11), or `None` for an object S11 does not name.
fn confirmed_fields(object: &str) -> Option<&'static [&'static str]> {
    Some(match object {
        "user" => &["id", "email", "first_name", "last_name"],
        "course" => &["id", "published_course_id", "title", "url"],
        "domain" => &["id", "name"],
        "purchase" => &[
            "order_id",
            "original_price",
            "purchase_price",
            "currency_code",
            "payment_processor",
        ],
        _ => return None,
    })
}

/// Which objects of each type carry S11's confirmed fields (fixtures/README.md: the
/// objects Skilljar's documents show for that type, "as in COURSE_ENROLLMENT"); the
/// other objects are modelled, and only checked to be objects.
fn confirmed_objects(t: EventType) -> &'static [&'static str] {
    match t {
        EventType::CourseEnrollment => CONFIRMED_OBJECTS,
        EventType::DomainEnrollment => &["user"],
        EventType::CourseCompletion | EventType::LessonCompletion | EventType::QuizCompletion => {
            &["user", "course", "domain"]
        }
        EventType::PathEnrollment | EventType::PurchaseFulfillment => {
            &["user", "domain", "purchase"]
        }
        EventType::PathCompletion => &["user", "domain"],
        _ => &[],
    }
}

/// `object.field` for each confirmed field of `objects` that `payload` lacks.
fn lacking_confirmed(payload: &Value, objects: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for object in objects {
        for field in confirmed_fields(object).unwrap_or_default() {
            if payload[*object].get(*field).is_none() {
                out.push(format!("{object}.{field}"));
            }
        }
    }
    out
}

/// The headers of a delivery as Skilljar's client (Python `requests`) sends them, and
/// the framing and auth ones: `host`, `content-type`, `content-length`, `user-agent`,
/// `authorization`, `accept`, `accept-encoding`, `connection`, `transfer-encoding`.
const SKILLJAR_CLIENT_HEADERS: &[&str] = &[
    "host",
    "content-type",
    "content-length",
    "user-agent",
    "authorization",
    "accept",
    "accept-encoding",
    "connection",
    "transfer-encoding",
];

pub(super) async fn s10_event_types(ctx: &mut Ctx) -> CaseOutput {
    ctx.hook("/ok", None).await?;
    for t in EventType::ALL {
        ctx.emit(t, json!({})).await?;
    }
    let reqs = ctx.wait(10, Duration::from_secs(10)).await;
    let seen: BTreeSet<String> = reqs.iter().filter_map(|r| r.event_type.clone()).collect();
    let expected: BTreeSet<String> = EventType::ALL
        .iter()
        .map(|t| t.as_str().to_owned())
        .collect();
    // S11: each type's payload carries the objects its fixture defines (`lesson`,
    // `path`, `quiz_attempt`, …), each an object.
    let mut lacking = Vec::new();
    for t in EventType::ALL {
        let fixture = hookjar_core::fixtures::value(t);
        let got = reqs
            .iter()
            .find(|r| r.event_type.as_deref() == Some(t.as_str()))
            .and_then(|r| r.json.clone())
            .unwrap_or(Value::Null);
        let Some(keys) = fixture.as_object() else {
            continue;
        };
        let mut missing: Vec<String> = keys
            .iter()
            .filter(|(k, v)| match got.get(k.as_str()) {
                None => true,
                Some(g) => v.is_object() && !g.is_object(),
            })
            .map(|(k, _)| k.clone())
            .collect();
        missing.extend(lacking_confirmed(&got, confirmed_objects(t)));
        if !missing.is_empty() && !got.is_null() {
            lacking.push(format!("{t} lacks {}", missing.join(", ")));
        }
    }
    Ok(vec![
        CaseResult::check(
            "S10.event-types",
            "S10",
            seen == expected && reqs.len() == 10,
            "one POST per type for a webhook with event_type null (all ten types)",
            format!("{} POSTs, types {:?}", reqs.len(), seen),
        ),
        CaseResult::check(
            "S11.type-objects",
            "S11",
            reqs.len() == 10 && lacking.is_empty(),
            "each type's payload has the top-level keys of its fixture, its objects as objects (lesson for LESSON_COMPLETION, path for PATH_*, quiz_attempt, task, vilt_event, …), and the confirmed fields of S11 in the objects Skilljar's documents show for that type (user: id, email, first_name, last_name; course: id, published_course_id, title, url; domain: id, name; purchase: order_id, …)",
            if lacking.is_empty() {
                format!("{} payloads, each with its fixture's keys", reqs.len())
            } else {
                lacking.join("; ")
            },
        ),
    ])
}

pub(super) async fn s12_fan_out(ctx: &mut Ctx) -> CaseOutput {
    ctx.hook("/s12-a", Some(EventType::CourseCompletion))
        .await?;
    ctx.hook("/s12-b", None).await?;
    ctx.create(json!({"target_url": ctx.mock_url("/s12-c"), "active": false}))
        .await?;
    // Two webhooks on one URL, told apart by a header: the older takes all types.
    ctx.create(json!({"target_url": ctx.mock_url("/s12-shared"), "additional_headers": {"x-hookjar-hook": "older"}}))
        .await?;
    ctx.create(json!({"target_url": ctx.mock_url("/s12-shared"), "event_type": "LESSON_COMPLETION", "additional_headers": {"x-hookjar-hook": "newer"}}))
        .await?;
    let e1 = ctx.emit(EventType::LessonCompletion, json!({})).await?;
    let e2 = ctx.emit(EventType::CourseCompletion, json!({})).await?;
    // Expected: LESSON → b, shared (once); COURSE_COMPLETION → a, b, shared.
    ctx.wait(5, Duration::from_secs(10)).await;
    ctx.settle(Duration::from_secs(5)).await;
    let reqs = ctx.mock.requests();
    let count = |p: &str| ctx.on_path(&reqs, p).len();
    let via: Vec<String> = ctx
        .on_path(&reqs, "/s12-shared")
        .iter()
        .map(|r| {
            format!(
                "{} via {}",
                r.event_type.as_deref().unwrap_or("?"),
                header(r, "x-hookjar-hook").unwrap_or("no header")
            )
        })
        .collect();
    let oldest = CaseResult::check(
        "S12.oldest-webhook",
        "S12",
        via.len() == 2 && via.iter().all(|v| v.ends_with("via older")),
        "settled: a shared URL gets the event through the oldest qualifying webhook, with its headers (both events via the older one)",
        via.join(", "),
    );
    let (a, b, c, shared) = (
        count("/s12-a"),
        count("/s12-b"),
        count("/s12-c"),
        count("/s12-shared"),
    );
    let fan = CaseResult::check(
        "S12.fan-out",
        "S12",
        a == 1 && b == 2 && c == 0 && e1["deliveries"] == 2 && e2["deliveries"] == 3,
        "typed webhook gets only its type (1), all-types webhook gets both (2), inactive webhook nothing (0); the emits count the active qualifying URLs only (2, then 3: X1)",
        format!(
            "typed {a}, all-types {b}, inactive {c}; emit answered {} then {}",
            e1["deliveries"], e2["deliveries"]
        ),
    );
    let one = CaseResult::check(
        "S12.one-per-url",
        "S12",
        shared == 2,
        "two qualifying webhooks on one URL → that URL gets each event once (2 POSTs for 2 events)",
        format!("{shared} POSTs to the shared URL"),
    );
    Ok(vec![fan, one, oldest])
}

/// S12 (settled): URLs are compared in normalised form, so a second webhook whose URL
/// differs only in the scheme's case and a `./` segment shares the first one's URL:
/// one POST per event, through the older webhook.
pub(super) async fn s12_normalised_url(ctx: &mut Ctx) -> CaseOutput {
    let plain = ctx.mock_url("/s12-norm");
    let Some(rest) = plain
        .strip_prefix("http://")
        .or(plain.strip_prefix("https://"))
    else {
        return Err(CaseError(format!(
            "the receiver URL {plain} is not http(s)"
        )));
    };
    let scheme = if plain.starts_with("https://") {
        "HTTPS"
    } else {
        "HTTP"
    };
    let variant = match rest.split_once('/') {
        Some((authority, path)) => format!("{scheme}://{authority}/./{path}"),
        None => format!("{scheme}://{rest}"),
    };
    let emitted = emit_to_both(ctx, &plain, &variant).await?;
    let reqs = ctx.mock.requests();
    let posts: Vec<String> = reqs
        .iter()
        .filter(|r| r.path_only().ends_with("s12-norm"))
        .map(|r| r.path.clone())
        .collect();
    Ok(vec![CaseResult::check(
        "S12.normalised-url",
        "S12",
        posts.len() == 1 && emitted["deliveries"] == 1,
        format!(
            "settled: {plain} and {variant} are one URL once normalised (scheme and host case, dot segments): 1 POST for 1 event, and the emit counts 1 delivery"
        ),
        format!(
            "{} POST(s) ({}); emit answered {}",
            posts.len(),
            posts.join(", "),
            emitted["deliveries"]
        ),
    )])
}

pub(super) async fn s13_ping(ctx: &mut Ctx) -> CaseOutput {
    let up = ctx
        .create(json!({"target_url": ctx.mock_url("/ok"), "basic_auth_username": "ping-user", "basic_auth_password": "ping-pass", "additional_headers": {"x-hookjar-ping": "1"}}))
        .await?;
    let want_auth =
        hookjar_core::request::basic_auth_header("ping-user", "ping-pass").unwrap_or_default();
    let id = up["id"].as_str().unwrap_or_default().to_owned();
    let (code, v) = ctx.ping(&id).await?;
    let reqs = ctx.wait(1, Duration::from_secs(10)).await;
    let pinged = reqs.first();
    let ok = code == 200
        && v["succeeded"] == true
        && v["http_status_code"] == 200
        && v["message"].is_string()
        && pinged.is_some_and(|r| {
            r.event_type.as_deref() == Some("PING")
                && header(r, "x-hookjar-ping") == Some("1")
                && header(r, "authorization") == Some(want_auth.as_str())
                && header(r, "user-agent") == Some("skilljar")
        });
    let ping = CaseResult::check(
        "S13.ping",
        "S13",
        ok,
        "200 {succeeded: true, http_status_code: 200, message}; the receiver gets {event_type: PING} with User-Agent, the webhook's Authorization and headers",
        format!(
            "{code} {v}; receiver saw {:?} with Authorization {:?}, x-hookjar-ping {:?}",
            pinged.map(|r| r.body.clone()),
            pinged.and_then(|r| header(r, "authorization")),
            pinged.and_then(|r| header(r, "x-hookjar-ping"))
        ),
    );
    ctx.mock.clear();
    let down = ctx.hook("/s13-down", None).await?;
    let (code, v) = ctx.ping(&down).await?;
    let gone = ctx.hook("/s13-4xx", None).await?;
    let (code4, v4) = ctx.ping(&gone).await?;
    let window = Duration::from_secs(10);
    ctx.settle(window).await;
    let after = ctx.webhook(&down).await?;
    let after4 = ctx.webhook(&gone).await?;
    let posts = ctx.mock.requests().len();
    let failure = CaseResult::check(
        "S13.ping-failure",
        "S13",
        code == 200
            && v["succeeded"] == false
            && v["http_status_code"] == 503
            && v["message"].is_string()
            && after["active"] == true
            && code4 == 200
            && v4["succeeded"] == false
            && v4["http_status_code"] == 404
            && v4["message"].is_string()
            && after4["active"] == true
            && posts == 2,
        "failed pings (503, 404) answer {succeeded: false, http_status_code}, are not retried, never deactivate",
        format!(
            "503 → {code} {v}, active {}; 404 → {code4} {v4}, active {}; {posts} POST(s) in {} s",
            after["active"],
            after4["active"],
            window.as_secs()
        ),
    );
    // An unknown id: Skilljar answers a bare 404, no body (S13).
    let (code, v) = ctx.api.post_empty("/v1/webhooks/hookjarnone1/ping").await?;
    let unknown = CaseResult::check(
        "S13.ping-unknown",
        "S13",
        code == 404 && v.is_null(),
        "a ping of an unknown webhook id answers 404 with no body",
        format!(
            "{code} {}",
            if v.is_null() {
                "(no body)".to_owned()
            } else {
                v.to_string()
            }
        ),
    );
    // A ping of an inactive webhook is sent like any other (S13 names no exception):
    // integrators ping to test an endpoint before they switch it on.
    ctx.mock.clear();
    let off = ctx
        .create(json!({"target_url": ctx.mock_url("/s13-inactive"), "active": false}))
        .await?;
    let off = off["id"].as_str().unwrap_or_default().to_owned();
    let (code, v) = ctx.ping(&off).await?;
    let reqs = ctx.wait(1, Duration::from_secs(10)).await;
    let pings = ctx.on_path(&reqs, "/s13-inactive");
    let off_after = ctx.webhook(&off).await?;
    // And one deactivated by a 404 (so it has a reason), pinged once the receiver
    // answers 200 again: the ping succeeds and changes nothing (S13 is a test, S4's
    // `active: true` is what re-activates).
    let reasoned = ctx
        .hook("/s13-reasoned", Some(EventType::CourseCompletion))
        .await?;
    set_route(ctx, "/s13-reasoned", "404")?;
    ctx.emit(EventType::CourseCompletion, json!({})).await?;
    let before = ctx
        .until_webhook(&reasoned, Duration::from_secs(10), |v| v["active"] == false)
        .await?;
    set_route(ctx, "/s13-reasoned", "200")?;
    let (rcode, rv) = ctx.ping(&reasoned).await?;
    let after = ctx.webhook(&reasoned).await?;
    let inactive = CaseResult::check(
        "S13.ping-inactive",
        "S13",
        code == 200
            && v["succeeded"] == true
            && pings.len() == 1
            && pings[0].event_type.as_deref() == Some("PING")
            && off_after["active"] == false
            && off_after["deactivate_reason"].is_null()
            && before["deactivate_reason"] == "HTTP_4XX_RESPONSE"
            && rcode == 200
            && rv["succeeded"] == true
            && after["active"] == false
            && after["deactivate_reason"] == "HTTP_4XX_RESPONSE",
        "a ping of an inactive webhook is sent: 200 {succeeded: true}, the receiver gets the PING; the webhook stays inactive with its deactivate_reason (one created inactive: null; one deactivated by a 404: HTTP_4XX_RESPONSE)",
        format!(
            "{code} {v}; {} PING(s) at the receiver; after: active {}, deactivate_reason {}; deactivated by a 404 (reason {}), pinged → {rcode} {rv}; after: active {}, deactivate_reason {}",
            pings.len(),
            off_after["active"],
            off_after["deactivate_reason"],
            before["deactivate_reason"],
            after["active"],
            after["deactivate_reason"]
        ),
    );
    // Any 2xx is a success, for a ping as for an event (S17); a ping that gets no
    // answer at all has no status code.
    ctx.mock.clear();
    let no_content = ctx.hook("/s13-204", None).await?;
    let (code2, v2) = ctx.ping(&no_content).await?;
    let two = CaseResult::check(
        "S13.ping-2xx",
        "S13",
        code2 == 200 && v2["succeeded"] == true && v2["http_status_code"] == 204,
        "a ping answered 204 → 200 {succeeded: true, http_status_code: 204}",
        format!("{code2} {v2}"),
    );
    let closed = closed_port_url(ctx, "/s13-closed")?;
    let refused = ctx
        .create(json!({"target_url": closed, "active": false}))
        .await?;
    let refused = refused["id"].as_str().unwrap_or_default().to_owned();
    let (code0, v0) = ctx.ping(&refused).await?;
    let no_answer = CaseResult::check(
        "S13.ping-no-answer",
        "S13",
        code0 == 200
            && v0["succeeded"] == false
            && v0["http_status_code"].is_null()
            && v0["message"].is_string(),
        format!(
            "a ping to a port where nothing listens ({closed}) → 200 {{succeeded: false, http_status_code: null, message}}"
        ),
        format!("{code0} {v0}"),
    );
    Ok(vec![ping, failure, unknown, inactive, two, no_answer])
}

/// Sets the mock's script for `path` (the others unchanged).
pub(super) fn set_route(ctx: &Ctx, path: &str, script: &str) -> Result<(), CaseError> {
    let mut routes = ctx.mock.scripts().routes;
    routes.insert(
        path.to_owned(),
        Script::parse(script).map_err(|e| CaseError(format!("the script {script}: {e}")))?,
    );
    ctx.mock.update_scripts(ScriptUpdate {
        routes: Some(routes),
        ..ScriptUpdate::default()
    });
    Ok(())
}

/// A URL on the receiver's host at a port where nothing listens (one just freed).
pub(super) fn closed_port_url(ctx: &Ctx, path: &str) -> Result<String, CaseError> {
    let mut url = reqwest::Url::parse(&ctx.mock_url(path))
        .map_err(|e| CaseError(format!("the receiver URL: {e}")))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| CaseError(format!("cannot find a free port: {e}")))?
        .port();
    url.set_port(Some(port))
        .map_err(|()| CaseError(format!("cannot set a port on {url}")))?;
    Ok(url.to_string())
}

/// S12: what is not the same URL stays apart (another query, a path in another case),
/// and only qualifying webhooks compete for a shared URL: an older webhook of another
/// type on the same URL does not take the event away from a newer one that qualifies.
pub(super) async fn s12_distinct_urls(ctx: &mut Ctx) -> CaseOutput {
    let t = json!("PATH_ENROLLMENT");
    for path in ["/s12-q?a=1", "/s12-q?a=2", "/s12-case", "/S12-CASE"] {
        ctx.create(json!({"target_url": ctx.mock_url(path), "event_type": t}))
            .await?;
    }
    // Older, of another type; then newer, of this type, on the same URL.
    ctx.create(
        json!({"target_url": ctx.mock_url("/s12-owner"), "event_type": "COURSE_COMPLETION"}),
    )
    .await?;
    ctx.create(json!({"target_url": ctx.mock_url("/s12-owner"), "event_type": t}))
        .await?;
    let emitted = ctx.emit(EventType::PathEnrollment, json!({})).await?;
    ctx.wait(5, Duration::from_secs(10)).await;
    ctx.settle(Duration::from_secs(5)).await;
    let reqs = ctx.mock.requests();
    let query = ctx.on_path(&reqs, "/s12-q").len();
    let mut targets: Vec<String> = ctx
        .on_path(&reqs, "/s12-q")
        .iter()
        .map(|r| r.path.clone())
        .collect();
    targets.sort();
    let case = ctx.on_path(&reqs, "/s12-case").len() + ctx.on_path(&reqs, "/S12-CASE").len();
    let owner = ctx.on_path(&reqs, "/s12-owner").len();
    Ok(vec![
        CaseResult::check(
            "S7.query-kept",
            "S7",
            targets == ["/s12-q?a=1", "/s12-q?a=2"],
            "the POST goes to target_url as stored, its query included (/s12-q?a=1 and /s12-q?a=2)",
            format!("request targets {targets:?}"),
        ),
        CaseResult::check(
            "S12.distinct-urls",
            "S12",
            query == 2 && case == 2,
            "URLs that differ in their query (?a=1, ?a=2) or in the case of their path (/s12-case, /S12-CASE) are different URLs: one POST each",
            format!(
                "query: {query} POST(s); path case: {case} POST(s); emit answered {}",
                emitted["deliveries"]
            ),
        ),
        CaseResult::check(
            "S12.dedupe-qualifying",
            "S12",
            owner == 1 && emitted["deliveries"] == 5,
            "an older webhook of another type on the same URL does not take the event from a newer one of this type: 1 POST; the emit counts 5 deliveries in all",
            format!(
                "{owner} POST(s) to the shared URL; emit answered {}",
                emitted["deliveries"]
            ),
        ),
    ])
}

/// Two COURSE_COMPLETION webhooks on URLs `a` and `b` that S12 says are one, then one
/// event and time for a second POST to come; the emit's answer.
async fn emit_to_both(ctx: &mut Ctx, a: &str, b: &str) -> Result<Value, CaseError> {
    for url in [a, b] {
        ctx.create(json!({"target_url": url, "event_type": "COURSE_COMPLETION"}))
            .await?;
    }
    let emitted = ctx.emit(EventType::CourseCompletion, json!({})).await?;
    ctx.wait(1, Duration::from_secs(10)).await;
    ctx.settle(Duration::from_secs(5)).await;
    Ok(emitted)
}

/// S12 (settled): host names are compared without case when URLs are deduplicated.
/// Needs a receiver the dispatcher reaches as `localhost` (skipped otherwise).
pub(super) async fn s12_host_case(ctx: &mut Ctx) -> CaseOutput {
    let base = match reqwest::Url::parse(&ctx.mock_url("/s12-host")) {
        Ok(u) => u,
        Err(e) => return Err(CaseError(format!("the receiver URL: {e}"))),
    };
    if !matches!(base.host_str(), Some("127.0.0.1" | "localhost")) {
        return Ok(vec![CaseResult::new(
            "S12.host-case",
            "S12",
            Status::Skip,
            "URLs whose host names differ only in case are one URL",
            format!("needs a receiver the dispatcher reaches as localhost; the receiver is {base}"),
        )]);
    }
    let port = base.port().map(|p| format!(":{p}")).unwrap_or_default();
    let lower = format!("{}://localhost{port}/s12-host", base.scheme());
    let upper = format!("{}://LocalHost{port}/s12-host", base.scheme());
    let emitted = emit_to_both(ctx, &lower, &upper).await?;
    let posts = ctx.on_path(&ctx.mock.requests(), "/s12-host").len();
    Ok(vec![CaseResult::check(
        "S12.host-case",
        "S12",
        posts == 1 && emitted["deliveries"] == 1,
        format!(
            "settled: {lower} and {upper} are one URL (host names compared without case): 1 POST for 1 event"
        ),
        format!("{posts} POST(s); emit answered {}", emitted["deliveries"]),
    )])
}

pub(super) async fn s8_credentials(ctx: &mut Ctx) -> CaseOutput {
    let t = EventType::PathCompletion;
    ctx.create(json!({"target_url": ctx.mock_url("/s8-none"), "event_type": t}))
        .await?;
    ctx.create(json!({"target_url": ctx.mock_url("/s8-user"), "event_type": t, "basic_auth_username": "only-user"}))
        .await?;
    ctx.create(json!({"target_url": ctx.mock_url("/s8-pass"), "event_type": t, "basic_auth_password": "only-pass"}))
        .await?;
    // S9: a header whose value is "" is a pair like any other, sent as it is (a
    // dispatcher that refuses an empty value at create is not judged here).
    let (empty_code, empty_v) = ctx
        .try_create(&json!({"target_url": ctx.mock_url("/s9-empty"), "event_type": t, "additional_headers": {"x-hookjar-empty": "", "x-hookjar-full": "1"}}))
        .await?;
    ctx.emit(t, json!({})).await?;
    let expected = if empty_code == 201 { 4 } else { 3 };
    let reqs = ctx.wait(expected, Duration::from_secs(10)).await;
    let empty_posts = ctx.on_path(&reqs, "/s9-empty");
    let empty = match (empty_code, empty_posts.first()) {
        (400, _) => CaseResult::new(
            "S9.empty-value",
            "S9",
            Status::Pass,
            "an additional header whose value is \"\" is sent with an empty value (or refused at create with 400)",
            format!("create refused it: 400 {empty_v}"),
        ),
        (code, first) => CaseResult::check(
            "S9.empty-value",
            "S9",
            code == 201
                && empty_posts.len() == 1
                && first.is_some_and(|r| {
                    header(r, "x-hookjar-empty") == Some("")
                        && header(r, "x-hookjar-full") == Some("1")
                }),
            "an additional header whose value is \"\" is sent with an empty value (or refused at create with 400)",
            format!(
                "create → {code}; {} POST(s); x-hookjar-empty {:?}, x-hookjar-full {:?}",
                empty_posts.len(),
                first.and_then(|r| header(r, "x-hookjar-empty")),
                first.and_then(|r| header(r, "x-hookjar-full"))
            ),
        ),
    };
    let auth_on = |p: &str| {
        ctx.on_path(&reqs, p)
            .first()
            .map(|r| header(r, "authorization").map(str::to_owned))
    };
    let none = auth_on("/s8-none");
    let user = auth_on("/s8-user");
    let pass = auth_on("/s8-pass");
    let want_user = hookjar_core::request::basic_auth_header("only-user", "");
    let want_pass = hookjar_core::request::basic_auth_header("", "only-pass");
    Ok(vec![
        CaseResult::check(
            "S8.no-credentials",
            "S8",
            none == Some(None),
            "a webhook without username or password gets no Authorization header",
            match &none {
                None => "no POST arrived".to_owned(),
                Some(a) => format!("Authorization {a:?}"),
            },
        ),
        CaseResult::check(
            "S8.half-credentials",
            "S8",
            user == Some(want_user.clone()) && pass == Some(want_pass.clone()),
            format!(
                "username only → {:?}; password only → {:?} (the missing half is empty)",
                want_user.unwrap_or_default(),
                want_pass.unwrap_or_default()
            ),
            format!("username only → {user:?}; password only → {pass:?}"),
        ),
        empty,
    ])
}

pub(super) async fn x1_emit_kept(ctx: &mut Ctx) -> CaseOutput {
    const GIVEN: &str = "2015-02-13T18:57:55.066475+00:00";
    // Non-ASCII text (é, ✓, 🚀): sent as UTF-8 JSON, it arrives intact.
    const CODE: &str = "x1-kept café ✓ 🚀";
    let json = emit_and_receive(
        ctx,
        "/ok",
        EventType::CourseCompletion,
        json!({"timestamp": GIVEN, "domain_access_code": CODE}),
    )
    .await?;
    let keys = key_order(&json);
    let received = ctx.mock.requests();
    let raw = received.first();
    let utf8_ok = raw.is_some_and(|r| !r.body.contains('\u{FFFD}') && r.json.is_some())
        && json["domain_access_code"] == CODE;
    Ok(vec![
        CaseResult::check(
            "X1.emit-kept",
            "X1,S11",
            json["timestamp"] == GIVEN && json["domain_access_code"] == CODE && first_two_ok(&keys),
            format!(
                "an emit's valid timestamp ({GIVEN}) and its top-level keys reach the receiver as given, in S11's order: event_type, timestamp, then the objects"
            ),
            format!(
                "timestamp {}, domain_access_code {}; keys {keys:?}",
                json["timestamp"], json["domain_access_code"]
            ),
        ),
        CaseResult::check(
            "S7.utf-8",
            "S7,S11",
            utf8_ok,
            format!(
                "the body is UTF-8 JSON: a value with non-ASCII characters ({CODE:?}) arrives intact"
            ),
            match raw {
                None => "no POST arrived".to_owned(),
                Some(r) if r.json.is_none() => {
                    format!("the body is not JSON in UTF-8: {:.120}", r.body)
                }
                Some(_) => format!("domain_access_code {}", json["domain_access_code"]),
            },
        ),
    ])
}

/// The top-level keys of a payload, in the order they were sent.
fn key_order(json: &Value) -> Vec<String> {
    json.as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// S11: `event_type` first, `timestamp` second.
fn first_two_ok(keys: &[String]) -> bool {
    keys.first().map(String::as_str) == Some("event_type")
        && keys.get(1).map(String::as_str) == Some("timestamp")
}

/// A webhook for `event_type` at `path`, one emit with `extra`, and the payload the
/// receiver got (`null` when none came within 10 s).
async fn emit_and_receive(
    ctx: &mut Ctx,
    path: &str,
    event_type: EventType,
    extra: Value,
) -> Result<Value, CaseError> {
    ctx.hook(path, Some(event_type)).await?;
    ctx.emit(event_type, extra).await?;
    let reqs = ctx.wait(1, Duration::from_secs(10)).await;
    Ok(reqs
        .first()
        .and_then(|r| r.json.clone())
        .unwrap_or(Value::Null))
}

/// X1: an object given to an emit replaces the fixture's whole (no merge); a valid
/// timestamp is kept as written, in any ISO 8601 form; an invalid one is refused with
/// 400 and nothing is sent.
pub(super) async fn x1_emit_rules(ctx: &mut Ctx) -> CaseOutput {
    const GIVEN: &str = "2015-02-13T18:57:55Z";
    let json = emit_and_receive(
        ctx,
        "/x1-rules",
        EventType::CourseEnrollment,
        json!({"timestamp": GIVEN, "course": {"id": "x1-only"}}),
    )
    .await?;
    let (code, v) = ctx
        .api
        .json(
            reqwest::Method::POST,
            "/v1/events",
            Some(&json!({"event_type": "COURSE_ENROLLMENT", "timestamp": "yesterday"})),
        )
        .await?;
    ctx.settle(Duration::from_secs(5)).await;
    let sent = ctx.mock.requests();
    let sent_after = sent.len();
    // The timestamp given is this case's own choice, not the dispatcher's: the mock's
    // S11 note on its form is left out of S7.every-request; every other note stays.
    for r in &sent {
        for note in &r.violations {
            if !note.starts_with("S11 timestamp") {
                ctx.violations
                    .push(format!("{} {}: {note}", r.method, r.path));
            }
        }
    }
    ctx.mock.clear();
    Ok(vec![
        CaseResult::check(
            "X1.replace-objects",
            "X1",
            json["course"] == json!({"id": "x1-only"}),
            "an object given to an emit replaces the fixture's (\"course\": {\"id\": \"x1-only\"} arrives as given, with none of the fixture's course fields)",
            format!("course {}", json["course"]),
        ),
        CaseResult::check(
            "X1.timestamp-as-given",
            "X1",
            json["timestamp"] == GIVEN && first_two_ok(&key_order(&json)),
            format!(
                "a valid ISO 8601 timestamp in another form ({GIVEN}) reaches the receiver as written, in its place (event_type, timestamp, then the objects: S11)"
            ),
            format!(
                "timestamp {}; keys {:?}",
                json["timestamp"],
                key_order(&json)
            ),
        ),
        CaseResult::check(
            "X1.bad-timestamp",
            "X1",
            code == 400 && v["timestamp"].is_array() && sent_after == 1,
            "an emit whose timestamp is not ISO 8601 (\"yesterday\") → 400 keyed by timestamp, and nothing is sent",
            format!("{code} {v}; {} POST(s) in all", sent_after),
        ),
    ])
}

/// S12 (settled: URLs compared in normalised form) on forms of the URL the other
/// cases leave out, one event type each so each claim has its own emit:
///
/// - `http://127.0.0.1:80/…` and `http://127.0.0.1/…` are one URL (the default port
///   dropped). Nothing listens there: only the emit's count decides, and the webhooks
///   are deleted when the case ends (their retries with them).
/// - `/s12-slash` and `/s12-slash/` are two URLs (a trailing slash is part of the path).
/// - `/s12-up/../s12-dd` and `/s12-dd` are one URL (`..` resolved).
/// - an older *inactive* webhook on a URL does not take the event from a newer active
///   one: only qualifying (active, typed) webhooks compete.
pub(super) async fn s12_url_forms(ctx: &mut Ctx) -> CaseOutput {
    let mut out = Vec::new();

    // The default port.
    let base = reqwest::Url::parse(&ctx.mock_url("/"))
        .map_err(|e| CaseError(format!("the receiver URL: {e}")))?;
    let host = base.host_str().unwrap_or("127.0.0.1").to_owned();
    // `host_str` brackets an IPv6 address already; add them only if it did not.
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host
    };
    let with_port = format!("http://{host}:80/s12-port");
    let without = format!("http://{host}/s12-port");
    for url in [&with_port, &without] {
        ctx.create(json!({"target_url": url, "event_type": "DASHBOARD_TASK_CREATED"}))
            .await?;
    }
    let e = ctx.emit(EventType::DashboardTaskCreated, json!({})).await?;
    out.push(CaseResult::check(
        "S12.default-port",
        "S12",
        e["deliveries"] == 1,
        format!(
            "settled: {with_port} and {without} are one URL (default port dropped): the emit counts 1 delivery"
        ),
        format!("emit answered {}", e["deliveries"]),
    ));

    // A trailing slash.
    for path in ["/s12-slash", "/s12-slash/"] {
        ctx.create(json!({"target_url": ctx.mock_url(path), "event_type": "PURCHASE_FULFILLMENT"}))
            .await?;
    }
    let e = ctx.emit(EventType::PurchaseFulfillment, json!({})).await?;
    ctx.wait(2, Duration::from_secs(10)).await;
    ctx.settle(Duration::from_secs(5)).await;
    let reqs = ctx.mock.requests();
    let bare = ctx.on_path(&reqs, "/s12-slash").len();
    let slash = ctx.on_path(&reqs, "/s12-slash/").len();
    out.push(CaseResult::check(
        "S12.trailing-slash",
        "S12",
        bare == 1 && slash == 1 && e["deliveries"] == 2,
        "/s12-slash and /s12-slash/ are two URLs (normalising keeps a trailing slash): one POST each; the emit counts 2",
        format!(
            "/s12-slash: {bare} POST(s), /s12-slash/: {slash}; emit answered {}",
            e["deliveries"]
        ),
    ));

    // A `..` segment.
    let plain = ctx.mock_url("/s12-dd");
    let dotted = ctx.mock_url("/s12-up/../s12-dd");
    let e = {
        for url in [&plain, &dotted] {
            ctx.create(json!({"target_url": url, "event_type": "QUIZ_COMPLETION"}))
                .await?;
        }
        ctx.emit(EventType::QuizCompletion, json!({})).await?
    };
    ctx.wait(reqs.len() + 1, Duration::from_secs(10)).await;
    ctx.settle(Duration::from_secs(5)).await;
    let posts: Vec<String> = ctx
        .mock
        .requests()
        .iter()
        .filter(|r| r.path_only().ends_with("s12-dd"))
        .map(|r| r.path.clone())
        .collect();
    out.push(CaseResult::check(
        "S12.dot-segments",
        "S12",
        posts.len() == 1 && e["deliveries"] == 1,
        format!(
            "settled: {plain} and {dotted} are one URL once '..' is resolved: 1 POST, and the emit counts 1 delivery"
        ),
        format!(
            "{} POST(s) ({}); emit answered {}",
            posts.len(),
            posts.join(", "),
            e["deliveries"]
        ),
    ));

    // An inactive older webhook on the URL.
    ctx.create(json!({"target_url": ctx.mock_url("/s12-idle"), "event_type": "VILT_EVENT_REGISTRATION", "active": false, "additional_headers": {"x-hookjar-hook": "older"}}))
        .await?;
    ctx.create(json!({"target_url": ctx.mock_url("/s12-idle"), "event_type": "VILT_EVENT_REGISTRATION", "additional_headers": {"x-hookjar-hook": "newer"}}))
        .await?;
    let before = ctx.mock.requests().len();
    let e = ctx
        .emit(EventType::ViltEventRegistration, json!({}))
        .await?;
    ctx.wait(before + 1, Duration::from_secs(10)).await;
    ctx.settle(Duration::from_secs(5)).await;
    let idle = ctx.on_path(&ctx.mock.requests(), "/s12-idle");
    out.push(CaseResult::check(
        "S12.inactive-owner",
        "S12",
        idle.len() == 1
            && header(&idle[0], "x-hookjar-hook") == Some("newer")
            && e["deliveries"] == 1,
        "an older inactive webhook on a URL does not take the event from a newer active one: 1 POST, through the newer (its headers); the emit counts 1",
        format!(
            "{} POST(s){}; emit answered {}",
            idle.len(),
            idle.first()
                .map(|r| format!(
                    " via {}",
                    header(r, "x-hookjar-hook").unwrap_or("no header")
                ))
                .unwrap_or_default(),
            e["deliveries"]
        ),
    ));
    Ok(out)
}
