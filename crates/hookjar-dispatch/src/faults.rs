//! Fault injection for the conformance suite's mutant tests (issue #9). Compiled only
//! with the `faults` feature, which only test crates enable through their
//! dev-dependencies: the shipped binary has no trace of it.
//!
//! Each [`Fault`] is one way a dispatcher can depart from the spec. The dispatcher
//! calls the hooks below at a handful of one-line `#[cfg(feature = "faults")]` sites;
//! with no fault installed every hook is the identity. Faults are process-global: a
//! test installs a set with [`install`], which holds a lock until the guard drops, so
//! mutant runs in one test binary never overlap.
//!
//! Policy mutants (base delay ×1.5, retry limit 59/61, no cap) need no hook: they are a
//! different [`hookjar_core::RetryPolicy`] in [`crate::Config`].

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};

use hookjar_core::payload::Payload;
use hookjar_core::verdict::DeactivateReason;
use hookjar_core::webhook::{PASSWORD_MASK, Webhook, WebhookPatch};
use hookjar_core::{DeliveryRequest, Outcome, RetryPolicy, Verdict};
use serde_json::Value;

/// One departure from the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// S16: a 4xx other than 404 is retried like a 5xx.
    RetryOther4xx,
    /// S17: only 200 counts as success; other 2xx are retried.
    Only200Succeeds,
    /// S18: connection refused deactivates (`HTTP_4XX_RESPONSE`) instead of retrying.
    RefusedDeactivates,
    /// S18: a timeout deactivates instead of retrying.
    TimeoutDeactivates,
    /// S14: the wait is measured from the attempt's start, not from its answer.
    WaitFromStart,
    /// S8: `Authorization: Basic Og==` is sent even without credentials.
    AlwaysBasicAuth,
    /// S8: Authorization only when both username and password are set.
    AuthOnlyWithBoth,
    /// S7: User-Agent and Content-Type are left off retries.
    RetryDropsStandardHeaders,
    /// S8: Authorization is left off retries.
    RetryDropsAuth,
    /// S9: additional headers are left off retries.
    RetryDropsExtraHeaders,
    /// S11: the payload lacks `domain` and `purchase`.
    PayloadLacksObjects,
    /// S18 (settled): a redirect is followed with a GET without a body.
    RedirectAsGet,
    /// S13: a ping answered 4xx deactivates the webhook.
    PingDeactivates,
    /// S13: a ping carries no Authorization.
    PingWithoutAuth,
    /// S15: a webhook deactivated by RETRY_COUNT keeps its other pending deliveries
    /// (a re-activation sends them).
    KeepPendingOnRetryCount,
    /// S12 (settled): a shared URL is served through the newest webhook.
    FanOutNewest,
    /// S12: no dedupe: a shared URL gets the event once per webhook.
    NoDedupe,
    /// S6b: samples carry a timestamp from 2001.
    StaleSampleTimestamp,
    /// S6b: samples carry a timestamp that is not ISO 8601.
    MalformedSampleTimestamp,
    /// S3: a write that sends `"********"` back stores it literally.
    StoreMaskLiterally,
    /// S3: the list shows passwords in clear while retrieve masks them.
    ListRevealsPassword,
    /// S1 (settled): the list is newest first.
    ListNewestFirst,
    /// S1 (settled): the default page size is 10, not 20.
    DefaultPageSize10,
    /// S5: the key is accepted with any password.
    KeyWithAnyPassword,
    /// S5: the key is accepted as the password (empty username).
    KeyAsPassword,
    /// S4: `active: true` re-activates only when `target_url` changes too.
    ReactivateOnlyWithNewUrl,
    /// S6: `Authorization` is accepted in `additional_headers` (and then replaces the
    /// Basic credentials on every POST).
    AuthorizationHeaderAccepted,
    /// S12 (settled): URLs are compared as stored, not normalised.
    UrlsComparedRaw,
    /// S16 (settled): a late verdict from before an update is applied.
    StaleVerdictApplied,
    /// S18 (settled): `Authorization` is kept on a redirect to another origin.
    RedirectKeepsAuth,
    /// S1 (settled): a `page_size` above 100 is honoured.
    NoMaxPageSize,
    /// S2: a blank `event_type` is refused instead of meaning all types.
    BlankEventTypeRefused,
    /// S6: unknown fields are ignored (DRF's default) instead of refused.
    UnknownFieldsIgnored,
    /// S2/S6: a `target_url` of up to 2048 characters is accepted.
    UrlMax2048,
    /// S13: a ping of an inactive webhook is refused (409) and nothing is sent.
    PingRefusesInactive,
    /// S12 (settled): host names are compared with their case when URLs are deduplicated.
    HostsComparedWithCase,
    /// S18 (settled): a 303 keeps the POST and its body (only 301/302 become a GET).
    SeeOtherKeepsPost,
    /// S13: a ping with no answer reports `http_status_code` 0, not null.
    PingStatusZero,
    /// S13/S17: a ping counts as succeeded only on a 200 (a 204 is reported failed).
    PingOnly200,
    /// S4: DELETE of an unknown id answers 204.
    DeleteUnknown204,
    /// S11: LESSON_COMPLETION is sent without its `lesson` object.
    LessonLacksLesson,
    /// Not a departure: an attempt enters the delivery log 1 s after its answer (as a
    /// dispatcher that logs attempts when they complete does). The suite must pass.
    SlowRecord,
}

static FAULTS: RwLock<BTreeSet<Fault>> = RwLock::new(BTreeSet::new());
static EXCLUSIVE: Mutex<()> = Mutex::new(());

/// Installs `faults` until the guard drops; waits while another guard is alive.
#[must_use = "the faults are removed when the guard drops"]
pub fn install(faults: impl IntoIterator<Item = Fault>) -> FaultGuard {
    let lock = EXCLUSIVE.lock().unwrap_or_else(PoisonError::into_inner);
    *FAULTS.write().unwrap_or_else(PoisonError::into_inner) = faults.into_iter().collect();
    FaultGuard { _lock: lock }
}

/// Removes the installed faults when dropped.
#[derive(Debug)]
pub struct FaultGuard {
    _lock: MutexGuard<'static, ()>,
}

impl Drop for FaultGuard {
    fn drop(&mut self) {
        FAULTS
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// Whether `fault` is installed.
pub fn on(fault: Fault) -> bool {
    FAULTS
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .contains(&fault)
}

/// Engine: the request of attempt `attempt` (0 = first) to `webhook`.
pub(crate) fn request(mut r: DeliveryRequest, webhook: &Webhook, attempt: u32) -> DeliveryRequest {
    let drop_header = |r: &mut DeliveryRequest, name: &str| {
        r.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    };
    if on(Fault::AlwaysBasicAuth) && r.header("authorization").is_none() {
        r.headers
            .push(("Authorization".into(), "Basic Og==".into()));
    }
    if on(Fault::AuthOnlyWithBoth)
        && (webhook.basic_auth_username.is_empty() || webhook.basic_auth_password.is_empty())
    {
        drop_header(&mut r, "authorization");
    }
    if attempt > 0 {
        if on(Fault::RetryDropsStandardHeaders) {
            drop_header(&mut r, "user-agent");
            drop_header(&mut r, "content-type");
        }
        if on(Fault::RetryDropsAuth) {
            drop_header(&mut r, "authorization");
        }
        if on(Fault::RetryDropsExtraHeaders) {
            for name in webhook.additional_headers.keys() {
                drop_header(&mut r, name);
            }
        }
    }
    if on(Fault::LessonLacksLesson) {
        if let Ok(Value::Object(mut m)) = serde_json::from_slice::<Value>(r.body.bytes()) {
            if m.get("event_type") == Some(&Value::from("LESSON_COMPLETION")) {
                m.remove("lesson");
                r.body = Payload::from_bytes(serde_json::to_vec(&m).unwrap_or_default());
            }
        }
    }
    if on(Fault::PayloadLacksObjects) {
        if let Ok(Value::Object(mut m)) = serde_json::from_slice::<Value>(r.body.bytes()) {
            m.remove("domain");
            m.remove("purchase");
            let bytes = serde_json::to_vec(&m).unwrap_or_default();
            r.body = Payload::from_bytes(bytes);
        }
    }
    r
}

/// Engine: the verdict on an attempt's outcome.
pub(crate) fn verdict(
    v: Verdict,
    outcome: &Outcome,
    policy: &RetryPolicy,
    attempt: u32,
) -> Verdict {
    let retry = || {
        policy.delay_before_retry(attempt + 1).map_or(
            Verdict::Deactivate {
                reason: DeactivateReason::RetryCount,
            },
            |delay| Verdict::RetryAfter { delay },
        )
    };
    let deactivate = Verdict::Deactivate {
        reason: DeactivateReason::Http4xxResponse,
    };
    match outcome {
        Outcome::Status { code }
            if (400..500).contains(code) && *code != 404 && on(Fault::RetryOther4xx) =>
        {
            retry()
        }
        Outcome::Status { code } if (201..300).contains(code) && on(Fault::Only200Succeeds) => {
            retry()
        }
        Outcome::Transport { error, .. } => {
            use hookjar_core::TransportKind as K;
            match error {
                K::Connect if on(Fault::RefusedDeactivates) => deactivate,
                K::Timeout if on(Fault::TimeoutDeactivates) => deactivate,
                _ => v,
            }
        }
        _ => v,
    }
}

/// Engine: before an attempt's record goes back to the scheduler.
pub(crate) async fn before_record() {
    if on(Fault::SlowRecord) {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// Engine: the instant the back-off is measured from.
pub(crate) fn finished_at(started_at: i64, finished_at: i64) -> i64 {
    if on(Fault::WaitFromStart) {
        started_at
    } else {
        finished_at
    }
}

/// Sender: `Some` replaces the send when redirects are to be followed as GETs.
pub(crate) async fn send(
    request: &DeliveryRequest,
    headers: &http::HeaderMap,
    max_redirects: usize,
) -> Option<(Outcome, String)> {
    if !on(Fault::RedirectAsGet) {
        return None;
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .ok()?;
    let mut url = reqwest::Url::parse(&request.url).ok()?;
    let mut post = true;
    for _ in 0..=max_redirects {
        let req = if post {
            client.post(url.clone()).body(request.body.bytes().clone())
        } else {
            client.get(url.clone())
        };
        let resp = match req.headers(headers.clone()).send().await {
            Ok(r) => r,
            Err(e) => {
                return Some((
                    Outcome::transport(hookjar_core::TransportKind::Other, e.to_string()),
                    String::new(),
                ));
            }
        };
        let code = resp.status().as_u16();
        let location = resp
            .headers()
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|l| url.join(l).ok());
        match location {
            Some(next) if resp.status().is_redirection() => {
                url = next;
                post = false;
            }
            _ => return Some((Outcome::status(code), String::new())),
        }
    }
    Some((
        Outcome::TooManyRedirects {
            hops: u32::try_from(max_redirects + 1).unwrap_or(u32::MAX),
        },
        String::new(),
    ))
}

/// API: the PING request.
pub(crate) fn ping_request(mut r: DeliveryRequest) -> DeliveryRequest {
    if on(Fault::PingWithoutAuth) {
        r.headers
            .retain(|(k, _)| !k.eq_ignore_ascii_case("authorization"));
    }
    r
}

/// API: after a ping; deactivates the webhook on a 4xx under [`Fault::PingDeactivates`].
pub(crate) async fn after_ping(store: &crate::store::Store, id: &str, outcome: &Outcome) {
    if on(Fault::PingDeactivates)
        && matches!(outcome, Outcome::Status { code } if (400..500).contains(code))
    {
        let _ = store
            .deactivate_webhook(id.to_owned(), DeactivateReason::Http4xxResponse)
            .await;
    }
}

/// Store: keep a deactivated webhook's pending deliveries (`why` names the reason).
pub(crate) fn keep_pending(why: &str) -> bool {
    on(Fault::KeepPendingOnRetryCount) && why.contains("RETRY_COUNT")
}

/// Store: the active webhooks in the order fan-out considers them (oldest first).
pub(crate) fn fan_out_rows<E>(
    mut rows: Vec<Result<(i64, Webhook), E>>,
) -> Vec<Result<(i64, Webhook), E>> {
    if on(Fault::FanOutNewest) {
        rows.reverse();
    }
    rows
}

/// API: a webhook body before validation. Under [`Fault::AuthorizationHeaderAccepted`]
/// an `Authorization` additional header is taken out before the checks and put back
/// after them, so it is stored and sent.
pub(crate) fn take_authorization(body: &mut Value) -> Option<(String, Value)> {
    if !on(Fault::AuthorizationHeaderAccepted) {
        return None;
    }
    let headers = body.get_mut("additional_headers")?.as_object_mut()?;
    let name = headers
        .keys()
        .find(|k| k.eq_ignore_ascii_case("authorization"))?
        .clone();
    let value = headers.remove(&name)?;
    Some((name, value))
}

/// API: puts back what [`take_authorization`] took out.
pub(crate) fn put_authorization(
    headers: &mut hookjar_core::webhook::Headers,
    taken: Option<(String, Value)>,
) {
    if let Some((name, Value::String(value))) = taken {
        headers.insert(name, value);
    }
}

/// Store: whether a verdict is stale (from before an update of its webhook).
pub(crate) fn stale(stale: bool) -> bool {
    stale && !on(Fault::StaleVerdictApplied)
}

/// Sender: whether `Authorization` is dropped on a hop to another origin.
pub(crate) fn drop_auth_across_origins() -> bool {
    !on(Fault::RedirectKeepsAuth)
}

/// API: a create body before validation ([`Fault::UnknownFieldsIgnored`],
/// [`Fault::UrlMax2048`], [`Fault::BlankEventTypeRefused`]). Returns a `target_url` to
/// store in place of the validated one: under `UrlMax2048` a URL of 1025–2048
/// characters is validated by its first 1024 and stored whole.
pub(crate) fn before_create(body: &mut Value) -> Option<String> {
    let Value::Object(map) = body else {
        return None;
    };
    if on(Fault::UnknownFieldsIgnored) {
        map.retain(|k, _| {
            hookjar_core::webhook::WRITABLE_FIELDS.contains(&k.as_str())
                || hookjar_core::webhook::READ_ONLY_FIELDS.contains(&k.as_str())
        });
    }
    if on(Fault::BlankEventTypeRefused) && map.get("event_type") == Some(&Value::from("")) {
        // Refused as an unknown type: a 400 keyed by event_type.
        map.insert("event_type".into(), "BLANK".into());
    }
    if !on(Fault::UrlMax2048) {
        return None;
    }
    let url = map.get("target_url")?.as_str()?.to_owned();
    let len = url.chars().count();
    if !(1025..=2048).contains(&len) {
        return None;
    }
    map.insert(
        "target_url".into(),
        url.chars().take(1024).collect::<String>().into(),
    );
    Some(url)
}

/// API: a ping's `succeeded` and `http_status_code` as answered
/// ([`Fault::PingStatusZero`], [`Fault::PingOnly200`]).
pub(crate) fn ping_answer(succeeded: bool, code: Option<u16>) -> (bool, Option<u16>) {
    let succeeded = succeeded && (!on(Fault::PingOnly200) || code == Some(200));
    let code = if on(Fault::PingStatusZero) {
        Some(code.unwrap_or(0))
    } else {
        code
    };
    (succeeded, code)
}

/// API: whether a ping of `webhook` is refused ([`Fault::PingRefusesInactive`]).
pub(crate) fn refuse_ping(webhook: &Webhook) -> bool {
    on(Fault::PingRefusesInactive) && !webhook.active
}

/// Sender: whether a redirect of `code` turns the POST into a GET.
pub(crate) fn to_get(code: u16) -> bool {
    if on(Fault::SeeOtherKeepsPost) {
        matches!(code, 301 | 302)
    } else {
        (301..=303).contains(&code)
    }
}

/// API: a list's page size from the query; under [`Fault::NoMaxPageSize`] a
/// `page_size` above the cap is honoured.
pub(crate) fn page_size(size: &mut u64, query: Option<&str>) {
    if !on(Fault::NoMaxPageSize) {
        return;
    }
    let asked = query
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.strip_prefix("page_size="))
        .find_map(|v| v.parse::<u64>().ok());
    if let Some(n) = asked.filter(|&n| n > 0) {
        *size = n;
    }
}

/// Store: the key fan-out compares URLs by (S12). Under [`Fault::NoDedupe`] every
/// webhook gets a key of its own, which defeats the one-per-URL rule; deliveries still
/// go to the stored URL.
pub(crate) fn dedupe_key(key: String, seq: i64, raw: &str) -> String {
    if on(Fault::NoDedupe) {
        format!("{key} fault-{seq}")
    } else if on(Fault::HostsComparedWithCase) {
        // The host as written, next to the normalised key.
        let host = raw.split_once("://").map_or("", |(_, rest)| {
            rest.split(['/', '?', '#']).next().unwrap_or("")
        });
        format!("{key} {host}")
    } else if on(Fault::UrlsComparedRaw) {
        raw.to_owned()
    } else {
        key
    }
}

/// API: a sample event before it is served.
pub(crate) fn sample(event: &hookjar_core::payload::Event) -> Sample {
    let mut v = event.to_value();
    if on(Fault::StaleSampleTimestamp) {
        v["timestamp"] = "2001-01-01T00:00:00.000000+00:00".into();
    }
    if on(Fault::MalformedSampleTimestamp) {
        v["timestamp"] = "yesterday".into();
    }
    Sample(v)
}

/// A sample as served (see [`sample`]).
pub(crate) struct Sample(Value);

impl Sample {
    pub(crate) fn to_value(&self) -> Value {
        self.0.clone()
    }
}

/// API: a validated update before it is applied.
pub(crate) fn patch(mut p: WebhookPatch) -> WebhookPatch {
    if on(Fault::StoreMaskLiterally) && p.basic_auth_password.is_none() {
        p.basic_auth_password = Some(PASSWORD_MASK.to_owned());
    }
    if on(Fault::ReactivateOnlyWithNewUrl) && p.target_url.is_none() && p.active == Some(true) {
        p.active = None;
    }
    p
}

/// API: a list page's webhooks in the order served, and whether it shows passwords
/// (retrieve keeps `reveal`).
pub(crate) fn list<T>(mut items: Vec<T>, reveal: bool) -> (Vec<T>, bool) {
    if on(Fault::ListNewestFirst) {
        items.reverse();
    }
    (items, reveal || on(Fault::ListRevealsPassword))
}

/// API: the page size when the query gives none.
pub(crate) fn default_page_size(size: &mut u64, query: Option<&str>) {
    if on(Fault::DefaultPageSize10) && !query.unwrap_or("").contains("page_size") {
        *size = 10;
    }
}

/// API auth: `Some(true)` accepts credentials the dispatcher would refuse.
pub(crate) fn accept_key(username: &str, password: &str, key: &str) -> bool {
    (on(Fault::KeyWithAnyPassword) && username == key)
        || (on(Fault::KeyAsPassword) && username.is_empty() && password == key)
}
