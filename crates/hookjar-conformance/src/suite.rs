//! The dispatcher conformance suite: one named case per clause, each driving a
//! dispatcher through its HTTP API (S1–S6b, S13, X1, X2) and observing its deliveries
//! through the mock receiver (S7–S19, X5).
//!
//! Time: against the in-process reference dispatcher the suite runs on tokio's paused
//! clock ([`TimeMode::Virtual`]), so the 50-hour exhaustion case takes no real time and
//! gaps are exact. Against a remote dispatcher it runs in real time, and every
//! dispatcher-time wait is divided by the dispatcher's `--time-scale`
//! ([`TimeMode::Scaled`]); gap tolerances widen accordingly.
//!
//! Isolation: cases run one after another; each registers its own webhooks on its own
//! mock path, clears the journal first, and deletes its webhooks when it ends.

use std::collections::BTreeSet;
use std::time::Duration;

use hookjar_core::verdict::human_duration;
use hookjar_core::{EventType, RetryPolicy};
use hookjar_mock::{MockReceiver, RecordedRequest};
use serde_json::{Value, json};

use crate::check::Progress;
use crate::report::{CaseResult, Report, Status};

/// How dispatcher time maps onto the suite's (tokio) time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TimeMode {
    /// tokio's clock is paused and auto-advances: waits cost nothing, gaps are exact.
    Virtual,
    /// Real time; the dispatcher counts one real second as this many seconds (X3).
    Scaled(f64),
}

impl TimeMode {
    /// The suite-time wait for `d` of dispatcher time.
    pub fn wait(self, d: Duration) -> Duration {
        match self {
            TimeMode::Virtual => d,
            TimeMode::Scaled(n) => d.div_f64(n),
        }
    }

    /// A suite-time gap as dispatcher time.
    pub fn observed(self, gap: Duration) -> Duration {
        match self {
            TimeMode::Virtual => gap,
            TimeMode::Scaled(n) => gap.mul_f64(n),
        }
    }

    /// How far an observed gap may be from the expected one.
    pub fn tolerance(self, expected: Duration) -> Duration {
        match self {
            TimeMode::Virtual => Duration::from_millis(100),
            // Network and scheduling jitter (~250 ms real) scaled up, plus 10 %.
            TimeMode::Scaled(n) => Duration::from_millis(250).mul_f64(n) + expected / 10,
        }
    }
}

/// What the suite runs against.
#[derive(Debug, Clone)]
pub struct Target {
    /// The dispatcher's base URL, e.g. `http://127.0.0.1:8750`.
    pub url: String,
    /// Its API key (S5).
    pub api_key: String,
    /// How its time relates to ours.
    pub time: TimeMode,
    /// Its retry policy (Skilljar's by default).
    pub policy: RetryPolicy,
}

/// Which cases to run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Keep only the first retries of the time-dependent cases; skip exhaustion.
    pub quick: bool,
    /// Only these clauses or cases (e.g. `S14`, `S7.`, `S18.transport`); empty = all.
    /// See [`selected`].
    pub only: Vec<String>,
}

/// Why the suite could not run at all (a case's own failure is a failed case instead).
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error("cannot start the mock receiver: {0}")]
    Mock(String),
    #[error("cannot start the reference dispatcher: {0}")]
    Dispatcher(String),
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error(
        "the dispatcher at {url} does not answer GET /v1/ping with the API key ({detail}); check --server and --api-key"
    )]
    Unreachable { url: String, detail: String },
}

/// A case's plumbing failed (unexpected API answer, timeout): the case fails with it.
#[derive(Debug)]
struct CaseError(String);

impl<E: std::fmt::Display> From<E> for CaseError {
    fn from(e: E) -> Self {
        CaseError(e.to_string())
    }
}

type CaseOutput = Result<Vec<CaseResult>, CaseError>;

/// The mock paths and scripts the cases use.
const ROUTES: &[(&str, &str)] = &[
    ("/ok", "200"),
    ("/s12-a", "200"),
    ("/s12-b", "200"),
    ("/s12-c", "200"),
    ("/s12-shared", "200"),
    ("/s13-down", "503"),
    ("/s14", "503*5,200"),
    ("/s15", "503"),
    ("/s16", "404"),
    ("/s16-410", "410"),
    ("/s18-redirect", "redirect"),
    ("/s18-reset", "reset,200"),
    ("/x5", "503*2,200"),
];

/// The ids of every case, in run order (for `--only` and progress bars).
pub const CASE_IDS: &[&str] = &[
    "S5.auth",
    "S5.ping",
    "S2.create-json",
    "S2.create-form",
    "S3.resource",
    "S4.update",
    "S4.delete",
    "S4.not-found",
    "S1.list",
    "S6.validation",
    "S6b.samples",
    "X1.emit",
    "S7.method",
    "S7.content-type",
    "S7.user-agent",
    "S7.single-object",
    "S8.basic-auth",
    "S9.additional-headers",
    "S10.event-types",
    "S11.payload",
    "S12.fan-out",
    "S12.one-per-url",
    "S13.ping",
    "S13.ping-failure",
    "S14.backoff",
    "S15.exhaustion",
    "S16.deactivate-4xx",
    "S4.reactivate",
    "S17.success",
    "S18.redirects",
    "S18.transport",
    "X2.delivery-log",
    "X5.same-bytes",
    "S19.stored",
];

/// Starts the reference dispatcher in-process (in-memory store, Skilljar's policy) and
/// runs the suite against it. Call it on [`crate::virtual_runtime`]: virtual time makes
/// the 50-hour exhaustion case take no real time.
pub async fn run_self_hosted(
    options: &Options,
    progress: &mut dyn Progress,
) -> Result<Report, SuiteError> {
    let api_key = "hookjar-conformance".to_owned();
    let dispatcher = hookjar_dispatch::Dispatcher::start(
        hookjar_dispatch::Config {
            api_key: api_key.clone(),
            store: hookjar_dispatch::StoreConfig::InMemory,
            ..hookjar_dispatch::Config::default()
        },
        "127.0.0.1:0",
    )
    .await
    .map_err(|e| SuiteError::Dispatcher(e.to_string()))?;
    let target = Target {
        url: dispatcher.url(),
        api_key,
        time: TimeMode::Virtual,
        policy: RetryPolicy::default(),
    };
    let result = run(&target, options, progress).await;
    dispatcher.shutdown().await;
    let mut report = result?;
    report.target = "self-hosted reference dispatcher (in-memory store, virtual time)".into();
    Ok(report)
}

/// Runs the suite against `target`, observing through a mock receiver started here.
pub async fn run(
    target: &Target,
    options: &Options,
    progress: &mut dyn Progress,
) -> Result<Report, SuiteError> {
    let started = std::time::Instant::now();
    let mut builder = MockReceiver::builder();
    for (path, script) in ROUTES {
        builder = builder
            .route(path, script)
            .map_err(|e| SuiteError::Mock(e.to_string()))?;
    }
    let mock = builder
        .start()
        .await
        .map_err(|e| SuiteError::Mock(e.to_string()))?;
    let api = Api::new(target)?;
    let ping = api.get("/v1/ping").await;
    match &ping {
        Ok((200, _)) => {}
        Ok((code, body)) => {
            return Err(SuiteError::Unreachable {
                url: target.url.clone(),
                detail: format!("HTTP {code} {body}"),
            });
        }
        Err(e) => {
            return Err(SuiteError::Unreachable {
                url: target.url.clone(),
                detail: e.0.clone(),
            });
        }
    }
    let mut ctx = Ctx {
        api,
        mock,
        time: target.time,
        policy: target.policy,
        quick: options.quick,
        created: Vec::new(),
    };
    let mut report = Report::new("dispatcher-conformance", target.url.clone());
    let wanted = |id: &str| selected(id, &options.only);

    // Cases are grouped: one function may report several ids from one observation.
    type CaseFn = for<'a> fn(&'a mut Ctx) -> futures_box::BoxFut<'a>;
    let groups: &[(&[&str], CaseFn)] = &[
        (&["S5.auth", "S5.ping"], |c| Box::pin(s5_auth(c))),
        (&["S2.create-json", "S2.create-form", "S3.resource"], |c| {
            Box::pin(s2_create(c))
        }),
        (&["S4.update", "S4.delete", "S4.not-found"], |c| {
            Box::pin(s4_update_delete(c))
        }),
        (&["S1.list"], |c| Box::pin(s1_list(c))),
        (&["S6.validation"], |c| Box::pin(s6_validation(c))),
        (&["S6b.samples"], |c| Box::pin(s6b_samples(c))),
        (
            &[
                "X1.emit",
                "S7.method",
                "S7.content-type",
                "S7.user-agent",
                "S7.single-object",
                "S8.basic-auth",
                "S9.additional-headers",
                "S11.payload",
            ],
            |c| Box::pin(s7_request(c)),
        ),
        (&["S10.event-types"], |c| Box::pin(s10_event_types(c))),
        (&["S12.fan-out", "S12.one-per-url"], |c| {
            Box::pin(s12_fan_out(c))
        }),
        (&["S13.ping", "S13.ping-failure"], |c| Box::pin(s13_ping(c))),
        (&["S14.backoff"], |c| Box::pin(s14_backoff(c))),
        (&["S15.exhaustion"], |c| Box::pin(s15_exhaustion(c))),
        (&["S16.deactivate-4xx", "S4.reactivate"], |c| {
            Box::pin(s16_deactivate(c))
        }),
        (&["S17.success"], |c| Box::pin(s17_success(c))),
        (&["S18.redirects", "S18.transport"], |c| {
            Box::pin(s18_other(c))
        }),
        (&["X2.delivery-log", "X5.same-bytes"], |c| {
            Box::pin(x5_same_bytes(c))
        }),
        (&["S19.stored"], |c| Box::pin(s19_stored(c))),
    ];

    for (ids, case) in groups {
        let ids: Vec<&str> = ids.iter().copied().filter(|id| wanted(id)).collect();
        if ids.is_empty() {
            continue;
        }
        progress.start(ids[0]);
        ctx.mock.clear();
        let t0 = std::time::Instant::now();
        let out = case(&mut ctx).await;
        ctx.cleanup().await;
        let elapsed = t0.elapsed();
        let results = match out {
            Ok(results) => results,
            Err(CaseError(msg)) => ids
                .iter()
                .map(|id| {
                    CaseResult::new(
                        *id,
                        clause_of(id),
                        Status::Fail,
                        "the case runs to its end",
                        format!("could not run: {msg}"),
                    )
                })
                .collect(),
        };
        let n = results.len().max(1) as u32;
        for mut r in results {
            if !wanted(&r.id) {
                continue;
            }
            r.duration = elapsed / n;
            progress.done(&r);
            report.cases.push(r);
        }
    }
    report.duration = started.elapsed();
    Ok(report)
}

/// Whether case `id` is selected by `--only` prefixes: a clause (`S1` selects `S1.list`,
/// not `S10.event-types`), a clause with its dot (`S7.`), or a whole id
/// (`S18.transport`); case-insensitive. No prefix selects everything.
pub fn selected(id: &str, only: &[String]) -> bool {
    let id = id.to_ascii_lowercase();
    only.is_empty()
        || only.iter().any(|o| {
            let o = o.to_ascii_lowercase();
            id == o || id.starts_with(&format!("{}.", o.trim_end_matches('.')))
        })
}

fn clause_of(id: &str) -> String {
    id.split('.').next().unwrap_or(id).to_owned()
}

/// Boxed futures for the case table.
mod futures_box {
    use std::future::Future;
    use std::pin::Pin;

    pub type BoxFut<'a> = Pin<Box<dyn Future<Output = super::CaseOutput> + 'a>>;
}

/// The management API client.
struct Api {
    client: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    fn new(target: &Target) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .no_proxy()
            .build()?;
        Ok(Api {
            client,
            base: target.url.trim_end_matches('/').to_owned(),
            key: target.api_key.clone(),
        })
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        auth: bool,
    ) -> Result<(u16, String), CaseError> {
        let req = if auth {
            req.basic_auth(&self.key, Some(""))
        } else {
            req
        };
        let resp = req.send().await?;
        let code = resp.status().as_u16();
        let text = resp.text().await?;
        Ok((code, text))
    }

    async fn get(&self, path: &str) -> Result<(u16, String), CaseError> {
        self.send(self.client.get(format!("{}{path}", self.base)), true)
            .await
    }

    /// A POST without a body (ping, redeliver).
    async fn post_empty(&self, path: &str) -> Result<(u16, Value), CaseError> {
        self.json(reqwest::Method::POST, path, None).await
    }

    async fn get_json(&self, path: &str) -> Result<(u16, Value), CaseError> {
        self.json(reqwest::Method::GET, path, None).await
    }

    async fn json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), CaseError> {
        let mut req = self
            .client
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(b);
        }
        let (code, text) = self.send(req, true).await?;
        let value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).map_err(|_| {
                CaseError(format!(
                    "{method} {path} answered {code} with a body that is not JSON: {text:.200}"
                ))
            })?
        };
        Ok((code, value))
    }
}

/// Everything a case needs.
struct Ctx {
    api: Api,
    mock: MockReceiver,
    time: TimeMode,
    policy: RetryPolicy,
    quick: bool,
    created: Vec<String>,
}

impl Ctx {
    fn mock_url(&self, path: &str) -> String {
        format!("{}{path}", self.mock.url().trim_end_matches('/'))
    }

    /// Creates a webhook (expects 201) and remembers it for cleanup.
    async fn create(&mut self, body: Value) -> Result<Value, CaseError> {
        let (code, v) = self
            .api
            .json(reqwest::Method::POST, "/v1/webhooks", Some(&body))
            .await?;
        if code != 201 {
            return Err(CaseError(format!(
                "POST /v1/webhooks answered {code}, expected 201: {v}"
            )));
        }
        let id = v["id"]
            .as_str()
            .ok_or_else(|| CaseError(format!("created webhook has no id: {v}")))?
            .to_owned();
        self.created.push(id);
        Ok(v)
    }

    /// A webhook for `event_type` (None = all) at the mock's `path`.
    async fn hook(
        &mut self,
        path: &str,
        event_type: Option<EventType>,
    ) -> Result<String, CaseError> {
        let v = self
            .create(json!({"target_url": self.mock_url(path), "event_type": event_type}))
            .await?;
        Ok(v["id"].as_str().unwrap_or_default().to_owned())
    }

    async fn webhook(&self, id: &str) -> Result<Value, CaseError> {
        let (code, v) = self.api.get_json(&format!("/v1/webhooks/{id}")).await?;
        if code != 200 {
            return Err(CaseError(format!(
                "GET /v1/webhooks/{id} answered {code}: {v}"
            )));
        }
        Ok(v)
    }

    /// A webhook's delivery log (X2): the status and the deliveries of its first page.
    async fn deliveries(&self, id: &str) -> Result<(u16, Vec<Value>), CaseError> {
        let (code, v) = self
            .api
            .get_json(&format!("/v1/webhooks/{id}/deliveries"))
            .await?;
        Ok((code, v["results"].as_array().cloned().unwrap_or_default()))
    }

    /// Emits an event (X1), expecting 202.
    async fn emit(&self, event_type: EventType, extra: Value) -> Result<Value, CaseError> {
        let mut body = json!({"event_type": event_type});
        if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
            b.extend(e);
        }
        let (code, v) = self
            .api
            .json(reqwest::Method::POST, "/v1/events", Some(&body))
            .await?;
        if code != 202 {
            return Err(CaseError(format!(
                "POST /v1/events answered {code}, expected 202: {v}"
            )));
        }
        Ok(v)
    }

    /// Waits until the mock has seen `n` requests in all, or `budget` of dispatcher time.
    async fn wait(&self, n: usize, budget: Duration) -> Vec<RecordedRequest> {
        let timeout = self.time.wait(budget) + Duration::from_secs(2);
        match self.mock.wait_for_requests(n, timeout).await {
            Ok(reqs) => reqs,
            Err(_) => self.mock.requests(),
        }
    }

    /// Lets `d` of dispatcher time pass (so that a POST that should not come, would).
    async fn settle(&self, d: Duration) {
        tokio::time::sleep(self.time.wait(d) + Duration::from_millis(200)).await;
    }

    /// Polls a webhook until `done` holds or `budget` of dispatcher time passes.
    async fn until_webhook(
        &self,
        id: &str,
        budget: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Result<Value, CaseError> {
        let deadline =
            tokio::time::Instant::now() + self.time.wait(budget) + Duration::from_secs(2);
        loop {
            let v = self.webhook(id).await?;
            if done(&v) || tokio::time::Instant::now() >= deadline {
                return Ok(v);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn on_path(&self, reqs: &[RecordedRequest], path: &str) -> Vec<RecordedRequest> {
        reqs.iter()
            .filter(|r| r.path_only() == path)
            .cloned()
            .collect()
    }

    /// Deletes what the case created.
    async fn cleanup(&mut self) {
        for id in std::mem::take(&mut self.created) {
            let _ = self
                .api
                .json(reqwest::Method::DELETE, &format!("/v1/webhooks/{id}"), None)
                .await;
        }
    }

    /// Dispatcher-time gaps between consecutive requests.
    fn gaps(&self, reqs: &[RecordedRequest]) -> Vec<Duration> {
        reqs.windows(2)
            .map(|w| {
                self.time
                    .observed(w[1].arrived.duration_since(w[0].arrived))
            })
            .collect()
    }

    /// Compares observed gaps with the policy's delays; `None` when they match.
    fn gap_mismatch(&self, gaps: &[Duration]) -> Option<String> {
        for (i, gap) in gaps.iter().enumerate() {
            let n = i as u32 + 1;
            let Some(expected) = self.policy.delay_before_retry(n) else {
                return Some(format!(
                    "a retry {n} beyond the limit of {}",
                    self.policy.max_retries
                ));
            };
            let tol = self.time.tolerance(expected);
            if gap.abs_diff(expected) > tol {
                return Some(format!(
                    "gap before retry {n} was {:.3}s, expected {}s (±{:.3}s)",
                    gap.as_secs_f64(),
                    expected.as_secs_f64(),
                    tol.as_secs_f64()
                ));
            }
        }
        None
    }
}

fn header<'a>(r: &'a RecordedRequest, name: &str) -> Option<&'a str> {
    r.header(name)
}

fn fmt_secs(gaps: &[Duration]) -> String {
    let parts: Vec<String> = gaps
        .iter()
        .map(|g| {
            let s = g.as_secs_f64();
            if (s - s.round()).abs() < 0.001 {
                format!("{}", s.round() as u64)
            } else {
                format!("{s:.2}")
            }
        })
        .collect();
    parts.join(",")
}

// ---------------------------------------------------------------------------------
// Management API cases

async fn s5_auth(ctx: &mut Ctx) -> CaseOutput {
    let url = format!("{}/v1/webhooks", ctx.api.base);
    let c = &ctx.api.client;
    let none = c.get(&url).send().await?;
    let none_code = none.status().as_u16();
    let challenge = none
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let none_body: Value = none.json().await.unwrap_or(Value::Null);
    let wrong = c
        .get(&url)
        .basic_auth("hookjar-wrong-key", Some(""))
        .send()
        .await?
        .status()
        .as_u16();
    let bearer = c
        .get(&url)
        .bearer_auth(&ctx.api.key)
        .send()
        .await?
        .status()
        .as_u16();
    let ok = none_code == 401
        && challenge.to_ascii_lowercase().starts_with("basic")
        && none_body.get("detail").is_some()
        && wrong == 401
        && bearer == 401;
    let auth = CaseResult::check(
        "S5.auth",
        "S5",
        ok,
        "401 {\"detail\"} with WWW-Authenticate: Basic without a key, with a wrong key and with a Bearer token",
        format!(
            "no key → {none_code} (WWW-Authenticate: {challenge:?}, body {none_body}); wrong key → {wrong}; Bearer → {bearer}"
        ),
    );
    let (code, body) = ctx.api.get("/v1/ping").await?;
    let ping = CaseResult::check(
        "S5.ping",
        "S5",
        code == 200 && body.trim().is_empty(),
        "GET /v1/ping with the key → 200 with an empty body",
        format!("{code} {body:?}"),
    );
    Ok(vec![auth, ping])
}

async fn s2_create(ctx: &mut Ctx) -> CaseOutput {
    let url = ctx.mock_url("/ok");
    let (code, v) = ctx
        .api
        .json(
            reqwest::Method::POST,
            "/v1/webhooks",
            Some(&json!({"target_url": url, "event_type": "COURSE_ENROLLMENT", "basic_auth_password": "pw"})),
        )
        .await?;
    if let Some(id) = v["id"].as_str() {
        ctx.created.push(id.to_owned());
    }
    let json_ok = code == 201
        && v["target_url"] == url
        && v["active"] == true
        && v["event_type"] == "COURSE_ENROLLMENT"
        && v["deactivate_reason"].is_null();
    let create_json = CaseResult::check(
        "S2.create-json",
        "S2",
        json_ok,
        "201 with the resource: target_url, active true by default, event_type, deactivate_reason null",
        if json_ok {
            format!(
                "{code}: active {}, event_type {}, deactivate_reason {}",
                v["active"], v["event_type"], v["deactivate_reason"]
            )
        } else {
            format!("{code} {v}")
        },
    );
    let resp = ctx
        .api
        .send(
            ctx.api
                .client
                .post(format!("{}/v1/webhooks", ctx.api.base))
                .form(&[
                    ("target_url", url.as_str()),
                    ("active", "false"),
                    (
                        "additional_headers",
                        r#"{"example_client_id":"abdcjkcjdidshdshkn"}"#,
                    ),
                ]),
            true,
        )
        .await?;
    let form: Value = serde_json::from_str(&resp.1).unwrap_or(Value::Null);
    if let Some(id) = form["id"].as_str() {
        ctx.created.push(id.to_owned());
    }
    let form_ok = resp.0 == 201
        && form["active"] == false
        && form["event_type"].is_null()
        && form["additional_headers"]["example_client_id"] == "abdcjkcjdidshdshkn";
    let create_form = CaseResult::check(
        "S2.create-form",
        "S2",
        form_ok,
        "a form-encoded create → 201; additional_headers given as a JSON object string",
        if form_ok {
            format!(
                "{}: active {}, additional_headers {}",
                resp.0, form["active"], form["additional_headers"]
            )
        } else {
            format!("{} {}", resp.0, resp.1)
        },
    );
    let id = v["id"].as_str().unwrap_or("");
    let fields: BTreeSet<&str> = v
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let expected_fields: BTreeSet<&str> = [
        "id",
        "target_url",
        "active",
        "deactivate_reason",
        "event_type",
        "basic_auth_username",
        "basic_auth_password",
        "additional_headers",
    ]
    .into_iter()
    .collect();
    let id_ok = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase());
    let masked = v["basic_auth_password"] == "********";
    let resource = CaseResult::check(
        "S3.resource",
        "S3",
        id_ok && expected_fields.is_subset(&fields) && masked,
        "id matching ^[0-9a-z]+$, every S3 field, a set password read back as \"********\"",
        format!(
            "id {id:?}, fields {:?}, basic_auth_password {}",
            fields, v["basic_auth_password"]
        ),
    );
    Ok(vec![create_json, create_form, resource])
}

async fn s4_update_delete(ctx: &mut Ctx) -> CaseOutput {
    let id = ctx.hook("/ok", Some(EventType::CourseCompletion)).await?;
    let new_url = ctx.mock_url("/ok?moved=1");
    let (code, v) = ctx
        .api
        .json(
            reqwest::Method::PUT,
            &format!("/v1/webhooks/{id}"),
            Some(&json!({"target_url": new_url})),
        )
        .await?;
    let put_ok =
        code == 200 && v["target_url"] == new_url && v["event_type"] == "COURSE_COMPLETION";
    let (pcode, pv) = ctx
        .api
        .json(
            reqwest::Method::PATCH,
            &format!("/v1/webhooks/{id}"),
            Some(&json!({"event_type": null})),
        )
        .await?;
    let patch_ok = pcode == 200 && pv["event_type"].is_null() && pv["target_url"] == new_url;
    let update = CaseResult::check(
        "S4.update",
        "S4",
        put_ok && patch_ok,
        "PUT with only target_url changes only it; PATCH event_type null = all types",
        if put_ok {
            format!(
                "PUT → {code}: target_url changed, event_type kept ({}); PATCH → {pcode}: event_type {}",
                v["event_type"], pv["event_type"]
            )
        } else {
            format!(
                "PUT → {code} {v}; PATCH → {pcode} event_type {}",
                pv["event_type"]
            )
        },
    );
    let del = ctx
        .api
        .send(
            ctx.api
                .client
                .delete(format!("{}/v1/webhooks/{id}", ctx.api.base)),
            true,
        )
        .await?;
    let (after, _) = ctx.api.get(&format!("/v1/webhooks/{id}")).await?;
    let delete = CaseResult::check(
        "S4.delete",
        "S4",
        del.0 == 204 && del.1.is_empty() && after == 404,
        "DELETE → 204 with no body; the webhook is gone (404)",
        format!("DELETE → {} {:?}; GET after → {after}", del.0, del.1),
    );
    let (code, v) = ctx.api.get_json("/v1/webhooks/doesnotexist0").await?;
    let not_found = CaseResult::check(
        "S4.not-found",
        "S4",
        code == 404 && v["detail"] == "Not found.",
        "unknown id → 404 {\"detail\": \"Not found.\"}",
        format!("{code} {v}"),
    );
    Ok(vec![update, delete, not_found])
}

async fn s1_list(ctx: &mut Ctx) -> CaseOutput {
    for _ in 0..3 {
        ctx.hook("/ok", Some(EventType::PathEnrollment)).await?;
    }
    let (code, all) = ctx.api.get_json("/v1/webhooks?page_size=100").await?;
    let count = all["count"].as_u64().unwrap_or(0);
    let (c1, p1) = ctx.api.get_json("/v1/webhooks?page_size=2").await?;
    let next = p1["next"].as_str().unwrap_or("").to_owned();
    let p2 = if next.starts_with("http") {
        let (_, text) = ctx.api.send(ctx.api.client.get(&next), true).await?;
        serde_json::from_str::<Value>(&text).unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    let ok = code == 200
        && c1 == 200
        && count >= 3
        && p1["results"].as_array().is_some_and(|r| r.len() == 2)
        && p1["previous"].is_null()
        && next.starts_with("http")
        && p2["previous"]
            .as_str()
            .is_some_and(|p| p.starts_with("http"))
        && p2["count"] == count;
    Ok(vec![CaseResult::check(
        "S1.list",
        "S1",
        ok,
        "{count, next, previous, results}; page_size=2 gives 2 results, an absolute next URL, and page 2 an absolute previous",
        format!(
            "count {count}; page 1: {} results, next {next:?}, previous {}; page 2 previous {}",
            p1["results"].as_array().map_or(0, Vec::len),
            p1["previous"],
            p2["previous"]
        ),
    )])
}

async fn s6_validation(ctx: &mut Ctx) -> CaseOutput {
    let (_, before) = ctx.api.get_json("/v1/webhooks?page_size=1").await?;
    let bad = json!({
        "target_url": "ftp://example.com/hook",
        "event_type": "COURSE_STARTED",
        "additional_headers": {"User-Agent": "mine", "bad header": "x"}
    });
    let (code, v) = ctx
        .api
        .json(reqwest::Method::POST, "/v1/webhooks", Some(&bad))
        .await?;
    let malformed = ctx
        .api
        .send(
            ctx.api
                .client
                .post(format!("{}/v1/webhooks", ctx.api.base))
                .header("content-type", "application/json")
                .body("{\"target_url\": "),
            true,
        )
        .await?;
    let (_, after) = ctx.api.get_json("/v1/webhooks?page_size=1").await?;
    let ok = code == 400
        && v["target_url"].is_array()
        && v["event_type"].is_array()
        && v["additional_headers"]
            .as_array()
            .is_some_and(|a| a.len() == 2)
        && malformed.0 == 400
        && before["count"] == after["count"];
    Ok(vec![CaseResult::check(
        "S6.validation",
        "S6",
        ok,
        "400 keyed by field (target_url, event_type, additional_headers: 2 errors), 400 for malformed JSON, nothing created",
        format!(
            "{code} {v}; malformed → {}; count {} → {}",
            malformed.0, before["count"], after["count"]
        ),
    )])
}

async fn s6b_samples(ctx: &mut Ctx) -> CaseOutput {
    let mut bad = Vec::new();
    for t in EventType::ALL {
        let (code, v) = ctx
            .api
            .get_json(&format!("/v1/webhooks/sample-{}", t.kebab()))
            .await?;
        let ev = &v["results"][0];
        if code != 200 || ev["event_type"] != t.as_str() || !ev["timestamp"].is_string() {
            bad.push(format!(
                "sample-{} → {code} {}",
                t.kebab(),
                v.to_string().chars().take(120).collect::<String>()
            ));
        }
    }
    Ok(vec![CaseResult::check(
        "S6b.samples",
        "S6b",
        bad.is_empty(),
        "GET /v1/webhooks/sample-<type> → {\"results\": [event]} for all ten types",
        if bad.is_empty() {
            "10 of 10 samples with their event_type and a timestamp".to_owned()
        } else {
            bad.join("; ")
        },
    )])
}

// ---------------------------------------------------------------------------------
// Delivery cases

async fn s7_request(ctx: &mut Ctx) -> CaseOutput {
    ctx.create(json!({
        "target_url": ctx.mock_url("/ok"),
        "event_type": "COURSE_ENROLLMENT",
        "basic_auth_username": "hookjar-user",
        "basic_auth_password": "hookjar-pass",
        "additional_headers": {"x-hookjar-client": "conformance", "client_id": "examplestring2"}
    }))
    .await?;
    let emitted = ctx.emit(EventType::CourseEnrollment, json!({})).await?;
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
                && json.get("id").is_none(),
            "flat object: event_type, timestamp (ISO 8601, µs, +00:00), then user, course, …; no event id",
            format!("keys {keys:?}, timestamp {}", json["timestamp"]),
        ),
    ])
}

async fn s10_event_types(ctx: &mut Ctx) -> CaseOutput {
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
    Ok(vec![CaseResult::check(
        "S10.event-types",
        "S10",
        seen == expected && reqs.len() == 10,
        "one POST per type for a webhook with event_type null (all ten types)",
        format!("{} POSTs, types {:?}", reqs.len(), seen),
    )])
}

async fn s12_fan_out(ctx: &mut Ctx) -> CaseOutput {
    ctx.hook("/s12-a", Some(EventType::CourseCompletion))
        .await?;
    ctx.hook("/s12-b", None).await?;
    ctx.create(json!({"target_url": ctx.mock_url("/s12-c"), "active": false}))
        .await?;
    ctx.hook("/s12-shared", None).await?;
    ctx.hook("/s12-shared", Some(EventType::LessonCompletion))
        .await?;
    let e1 = ctx.emit(EventType::LessonCompletion, json!({})).await?;
    let e2 = ctx.emit(EventType::CourseCompletion, json!({})).await?;
    // Expected: LESSON → b, shared (once); COURSE_COMPLETION → a, b, shared.
    ctx.wait(5, Duration::from_secs(10)).await;
    ctx.settle(Duration::from_secs(30)).await;
    let reqs = ctx.mock.requests();
    let count = |p: &str| ctx.on_path(&reqs, p).len();
    let (a, b, c, shared) = (
        count("/s12-a"),
        count("/s12-b"),
        count("/s12-c"),
        count("/s12-shared"),
    );
    let fan = CaseResult::check(
        "S12.fan-out",
        "S12",
        a == 1 && b == 2 && c == 0,
        "typed webhook gets only its type (1), all-types webhook gets both (2), inactive webhook nothing (0)",
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
    Ok(vec![fan, one])
}

async fn s13_ping(ctx: &mut Ctx) -> CaseOutput {
    let up = ctx
        .create(json!({"target_url": ctx.mock_url("/ok"), "additional_headers": {"x-hookjar-ping": "1"}}))
        .await?;
    let id = up["id"].as_str().unwrap_or_default().to_owned();
    let (code, v) = ctx
        .api
        .post_empty(&format!("/v1/webhooks/{id}/ping"))
        .await?;
    let reqs = ctx.wait(1, Duration::from_secs(10)).await;
    let pinged = reqs.first();
    let ok = code == 200
        && v["succeeded"] == true
        && v["http_status_code"] == 200
        && v["message"].is_string()
        && pinged.is_some_and(|r| {
            r.event_type.as_deref() == Some("PING") && header(r, "x-hookjar-ping") == Some("1")
        });
    let ping = CaseResult::check(
        "S13.ping",
        "S13",
        ok,
        "200 {succeeded: true, http_status_code: 200, message}; the receiver gets {event_type: PING} with the webhook's headers",
        format!(
            "{code} {v}; receiver saw {:?}",
            pinged.map(|r| r.body.clone())
        ),
    );
    ctx.mock.clear();
    let down = ctx.hook("/s13-down", None).await?;
    let (code, v) = ctx
        .api
        .post_empty(&format!("/v1/webhooks/{down}/ping"))
        .await?;
    ctx.settle(Duration::from_secs(60)).await;
    let after = ctx.webhook(&down).await?;
    let posts = ctx.mock.requests().len();
    let failure = CaseResult::check(
        "S13.ping-failure",
        "S13",
        code == 200
            && v["succeeded"] == false
            && v["http_status_code"] == 503
            && after["active"] == true
            && posts == 1,
        "a failed ping answers {succeeded: false, http_status_code: 503}, is not retried, does not deactivate",
        format!(
            "{code} {v}; {posts} POST(s) in 60 s; active {}",
            after["active"]
        ),
    );
    Ok(vec![ping, failure])
}

async fn s14_backoff(ctx: &mut Ctx) -> CaseOutput {
    let id = ctx.hook("/s14", Some(EventType::CourseCompletion)).await?;
    ctx.emit(EventType::CourseCompletion, json!({})).await?;
    let budget = ctx
        .policy
        .schedule()
        .get(5)
        .map_or(Duration::from_secs(120), |a| a.at)
        + Duration::from_secs(10);
    let reqs = ctx.wait(6, budget).await;
    ctx.settle(
        ctx.policy
            .delay_before_retry(6)
            .unwrap_or(Duration::from_secs(64)),
    )
    .await;
    let reqs_after = ctx.mock.requests();
    let gaps = ctx.gaps(&reqs);
    let hook = ctx.webhook(&id).await?;
    let mismatch = ctx.gap_mismatch(&gaps);
    let expected: Vec<Duration> = (1..=5)
        .filter_map(|n| ctx.policy.delay_before_retry(n))
        .collect();
    Ok(vec![CaseResult::check(
        "S14.backoff",
        "S14",
        reqs.len() == 6 && reqs_after.len() == 6 && mismatch.is_none() && hook["active"] == true,
        format!(
            "503 ×5 then 200: 6 POSTs with gaps {} s, then no more; webhook stays active",
            fmt_secs(&expected)
        ),
        format!(
            "{} POSTs (then {}), gaps {} s{}; active {}",
            reqs.len(),
            reqs_after.len(),
            fmt_secs(&gaps),
            mismatch.map(|m| format!(" — {m}")).unwrap_or_default(),
            hook["active"]
        ),
    )])
}

async fn s15_exhaustion(ctx: &mut Ctx) -> CaseOutput {
    if ctx.quick {
        return Ok(vec![CaseResult::new(
            "S15.exhaustion",
            "S15",
            Status::Skip,
            "61 POSTs then RETRY_COUNT",
            "--quick skips the full retry life-cycle",
        )]);
    }
    let id = ctx.hook("/s15", Some(EventType::QuizCompletion)).await?;
    ctx.emit(EventType::QuizCompletion, json!({})).await?;
    let total = ctx.policy.max_retries as usize + 1;
    let reqs = ctx
        .wait(total, ctx.policy.total() + Duration::from_secs(60))
        .await;
    let hook = ctx
        .until_webhook(&id, Duration::from_secs(60), |v| v["active"] == false)
        .await?;
    ctx.settle(Duration::from_secs(7200)).await;
    let after = ctx.mock.requests().len();
    let gaps = ctx.gaps(&reqs);
    let mismatch = ctx.gap_mismatch(&gaps);
    let span: Duration = gaps.iter().sum();
    Ok(vec![CaseResult::check(
        "S15.exhaustion",
        "S15",
        reqs.len() == total
            && after == total
            && mismatch.is_none()
            && hook["active"] == false
            && hook["deactivate_reason"] == "RETRY_COUNT",
        format!(
            "503 forever: {total} POSTs over {} ({} s), then active false with RETRY_COUNT and nothing more",
            human_duration(ctx.policy.total()),
            ctx.policy.total().as_secs()
        ),
        format!(
            "{} POSTs over {:.0} s (then {after}){}; active {}, deactivate_reason {}",
            reqs.len(),
            span.as_secs_f64(),
            mismatch.map(|m| format!(" — {m}")).unwrap_or_default(),
            hook["active"],
            hook["deactivate_reason"]
        ),
    )])
}

async fn s16_deactivate(ctx: &mut Ctx) -> CaseOutput {
    let id = ctx.hook("/s16", Some(EventType::LessonCompletion)).await?;
    ctx.emit(EventType::LessonCompletion, json!({})).await?;
    ctx.wait(1, Duration::from_secs(10)).await;
    let hook = ctx
        .until_webhook(&id, Duration::from_secs(10), |v| v["active"] == false)
        .await?;
    ctx.emit(EventType::LessonCompletion, json!({})).await?;
    ctx.settle(Duration::from_secs(120)).await;
    let posts = ctx.mock.requests().len();
    let deact = CaseResult::check(
        "S16.deactivate-4xx",
        "S16",
        posts == 1 && hook["active"] == false && hook["deactivate_reason"] == "HTTP_4XX_RESPONSE",
        "a 404 → one POST, no retry, webhook active false with HTTP_4XX_RESPONSE; later events not sent",
        format!(
            "{posts} POST(s); active {}, deactivate_reason {}",
            hook["active"], hook["deactivate_reason"]
        ),
    );
    // Re-activate (S4) on a URL that answers 200: new events flow again.
    let (code, v) = ctx
        .api
        .json(
            reqwest::Method::PUT,
            &format!("/v1/webhooks/{id}"),
            Some(&json!({"active": true, "target_url": ctx.mock_url("/ok")})),
        )
        .await?;
    ctx.mock.clear();
    ctx.emit(EventType::LessonCompletion, json!({})).await?;
    let reqs = ctx.wait(1, Duration::from_secs(10)).await;
    let react = CaseResult::check(
        "S4.reactivate",
        "S4",
        code == 200 && v["active"] == true && v["deactivate_reason"].is_null() && reqs.len() == 1,
        "PUT {active: true} clears deactivate_reason and the webhook receives new events",
        format!(
            "{code}: active {}, deactivate_reason {}; {} POST(s) after",
            v["active"],
            v["deactivate_reason"],
            reqs.len()
        ),
    );
    Ok(vec![deact, react])
}

async fn s17_success(ctx: &mut Ctx) -> CaseOutput {
    let id = ctx.hook("/ok", Some(EventType::DomainEnrollment)).await?;
    ctx.emit(EventType::DomainEnrollment, json!({})).await?;
    ctx.wait(1, Duration::from_secs(10)).await;
    ctx.settle(Duration::from_secs(60)).await;
    let posts = ctx.mock.requests().len();
    let hook = ctx.webhook(&id).await?;
    Ok(vec![CaseResult::check(
        "S17.success",
        "S17",
        posts == 1 && hook["active"] == true,
        "a 200 → exactly one POST, no retry, webhook stays active",
        format!("{posts} POST(s) in 60 s; active {}", hook["active"]),
    )])
}

async fn s18_other(ctx: &mut Ctx) -> CaseOutput {
    let id = ctx
        .hook("/s18-redirect", Some(EventType::PathEnrollment))
        .await?;
    ctx.emit(EventType::PathEnrollment, json!({})).await?;
    let hook = ctx
        .until_webhook(&id, Duration::from_secs(30), |v| v["active"] == false)
        .await?;
    let hops = ctx.mock.requests().len();
    let redirects = CaseResult::check(
        "S18.redirects",
        "S18",
        hook["active"] == false && hook["deactivate_reason"] == "TOO_MANY_REDIRECTS" && hops == 11,
        "a redirect loop is followed 10 times (11 requests), then the webhook is deactivated with TOO_MANY_REDIRECTS",
        format!(
            "{hops} requests; active {}, deactivate_reason {}",
            hook["active"], hook["deactivate_reason"]
        ),
    );
    ctx.mock.clear();
    let id = ctx
        .hook("/s18-reset", Some(EventType::PurchaseFulfillment))
        .await?;
    ctx.emit(EventType::PurchaseFulfillment, json!({})).await?;
    let reqs = ctx.wait(2, Duration::from_secs(30)).await;
    let gaps = ctx.gaps(&reqs);
    let mismatch = ctx.gap_mismatch(&gaps);
    let hook = ctx.webhook(&id).await?;
    let transport = CaseResult::check(
        "S18.transport",
        "S18",
        reqs.len() == 2 && mismatch.is_none() && hook["active"] == true,
        "a reset connection is retried like a 5xx (second POST 2 s later) and does not deactivate",
        format!(
            "{} POSTs, gaps {} s{}; active {}",
            reqs.len(),
            fmt_secs(&gaps),
            mismatch.map(|m| format!(" — {m}")).unwrap_or_default(),
            hook["active"]
        ),
    );
    Ok(vec![redirects, transport])
}

async fn x5_same_bytes(ctx: &mut Ctx) -> CaseOutput {
    let id = ctx
        .hook("/x5", Some(EventType::ViltEventRegistration))
        .await?;
    ctx.emit(EventType::ViltEventRegistration, json!({}))
        .await?;
    let reqs = ctx.wait(3, Duration::from_secs(60)).await;
    let digests: BTreeSet<String> = reqs.iter().map(|r| r.digest.to_string()).collect();
    let bodies_equal = reqs.windows(2).all(|w| w[0].body == w[1].body);
    let same = CaseResult::check(
        "X5.same-bytes",
        "X5,S11",
        reqs.len() == 3 && digests.len() == 1 && bodies_equal,
        "503, 503, 200: three POSTs of identical bytes (one digest)",
        format!("{} POSTs, {} distinct digest(s)", reqs.len(), digests.len()),
    );
    // X2: the log shows the delivery with its three attempts; redeliver resends the bytes.
    let (code, deliveries) = ctx.deliveries(&id).await?;
    let first = deliveries.first().cloned().unwrap_or(Value::Null);
    let attempts = first["attempts"].as_array().map_or(0, Vec::len);
    let delivery_id = first["id"].as_str().unwrap_or_default().to_owned();
    ctx.mock.clear();
    let (rcode, rv) = ctx
        .api
        .post_empty(&format!("/v1/deliveries/{delivery_id}/redeliver"))
        .await?;
    let again = ctx.wait(1, Duration::from_secs(10)).await;
    let same_digest = again
        .first()
        .is_some_and(|r| digests.contains(&r.digest.to_string()));
    let log = CaseResult::check(
        "X2.delivery-log",
        "X2",
        code == 200 && attempts == 3 && (200..300).contains(&rcode) && same_digest,
        "the delivery log lists the delivery with its 3 attempts; redeliver resends the same bytes",
        format!(
            "{code}: {} deliveries, first with {attempts} attempts; redeliver → {rcode} {rv}; resent same digest: {same_digest}",
            deliveries.len()
        ),
    );
    Ok(vec![same, log])
}

async fn s19_stored(ctx: &mut Ctx) -> CaseOutput {
    let id = ctx
        .hook("/ok", Some(EventType::DashboardTaskCreated))
        .await?;
    let emitted = ctx.emit(EventType::DashboardTaskCreated, json!({})).await?;
    // Straight after the 202 the delivery must already be in the log.
    let (code, deliveries) = ctx.deliveries(&id).await?;
    let n = deliveries.len();
    ctx.wait(1, Duration::from_secs(10)).await;
    Ok(vec![CaseResult::check(
        "S19.stored",
        "S19",
        emitted["deliveries"].as_u64().is_some_and(|d| d >= 1) && code == 200 && n == 1,
        "when emit answers 202 the event's delivery is already stored (listed in the delivery log)",
        format!("emit {emitted}; log right after: {code}, {n} delivery(ies)"),
    )])
}
