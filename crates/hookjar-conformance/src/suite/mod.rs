//! The dispatcher conformance suite: one named case per clause, each driving a
//! dispatcher through its HTTP API (S1–S6b, S13, X1, X2) and observing its deliveries
//! through the mock receiver (S7–S19, X5).
//!
//! Time: against the in-process reference dispatcher the suite runs on tokio's paused
//! clock ([`TimeMode::Virtual`]), so the 50-hour exhaustion case takes no real time and
//! gaps are exact. Against a remote dispatcher it runs in real time, and every
//! dispatcher-time wait is divided by the dispatcher's `--time-scale`
//! ([`TimeMode::Scaled`]); gaps are compared in wall time, and a gap the scale cannot
//! resolve makes its case inconclusive, never passed (see [`timing`]).
//!
//! Isolation: cases run one after another; each registers its own webhooks on its own
//! mock path, clears the journal first, and deletes its webhooks when it ends.

//!
//! Layout: one module per clause group, so a clause's case is found by its file —
//! [`api`] (S1–S6b), [`delivery`] (S7–S13, X1), [`retries`] (S14–S19), [`toolkit`]
//! (X2, X5) — and [`context`], what they share (API client, mock, timing checks).

mod api;
mod context;
mod delivery;
mod retries;
pub mod timing;
mod toolkit;

use std::net::SocketAddr;
use std::time::Duration;

use hookjar_core::RetryPolicy;
use hookjar_mock::MockReceiver;
use tokio::sync::watch;

use crate::check::Progress;
use crate::report::{CaseResult, Report, Status};
use api::*;
use context::{Api, Ctx};
use delivery::*;
use retries::*;
use toolkit::*;

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

    /// The scale (1 in virtual time).
    pub fn scale(self) -> f64 {
        match self {
            TimeMode::Virtual => 1.0,
            TimeMode::Scaled(n) => n,
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

/// Which cases to run, and how.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Keep only the first retries of the time-dependent cases; skip exhaustion.
    pub quick: bool,
    /// Only these clauses or cases (e.g. `S14`, `S7.`, `S18.transport`); empty = all.
    /// See [`selected`].
    pub only: Vec<String>,
    /// Where the suite's mock receiver listens (default `127.0.0.1:0`).
    pub receiver_addr: Option<SocketAddr>,
    /// The base URL the dispatcher is told to POST to (default: the receiver's own
    /// URL), e.g. `http://host.docker.internal:9000` for a dispatcher in a container.
    pub receiver_url: Option<String>,
    /// Run even when the server already has webhooks (they receive the suite's events).
    pub allow_existing_webhooks: bool,
    /// When this turns true the run stops after cleaning up the running case, and the
    /// report holds what ran ([`Report::interrupted`]).
    pub stop: Option<watch::Receiver<bool>>,
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
    #[error(
        "the dispatcher at {url} already has {count} webhook(s): they would receive the suite's events (and some cases count every webhook); run against a dispatcher of its own, delete them, or pass --allow-existing-webhooks"
    )]
    ExistingWebhooks { url: String, count: u64 },
    #[error(
        "--receiver-url {0:?} is not an absolute http(s) URL; give the base URL the dispatcher can reach the receiver at, e.g. http://host.docker.internal:9000"
    )]
    ReceiverUrl(String),
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

/// The mock paths and scripts the cases use; some scripts depend on the time scale.
fn routes(time: TimeMode, policy: &RetryPolicy, quick: bool) -> Vec<(String, String)> {
    let fixed = [
        ("/ok", "200"),
        ("/s3", "200"),
        ("/s8-none", "200"),
        ("/s8-user", "200"),
        ("/s8-pass", "200"),
        ("/s12-a", "200"),
        ("/s12-b", "200"),
        ("/s12-c", "200"),
        ("/s12-shared", "200"),
        ("/s12-norm", "200"),
        ("/s6-reserved", "200"),
        ("/s13-down", "503"),
        ("/s13-4xx", "404"),
        ("/s15", "503"),
        ("/s16", "404"),
        ("/s16-400", "400"),
        ("/s16-410", "410"),
        ("/s16-429", "429"),
        ("/s16-408", "408"),
        ("/s16-retry", "503,404"),
        ("/s16-slow", "404@3s"),
        ("/s16-moved", "200"),
        ("/s17-201", "201"),
        ("/s17-204", "204"),
        ("/s18-redirect", "redirect"),
        ("/s18-moved", "redirect=/s18-target"),
        ("/s18-target", "200"),
        ("/s18-landed", "200"),
        ("/s18-reset", "reset,200"),
        ("/s18-hang", "hang"),
        ("/s18-302", "302,200"),
        ("/s18-moved-308", "308=/s18-target-308"),
        ("/s18-target-308", "200"),
        ("/s18-slow", "200@7s"),
        ("/s16-420", "420"),
        ("/s16-499", "499"),
        ("/s17-299", "299"),
        ("/s13-204", "204"),
        ("/s18-see-301", "301=/s18-got-301"),
        ("/s18-see-302", "302=/s18-got-302"),
        ("/s18-see-303", "303=/s18-got-303"),
        ("/s18-got-301", "200"),
        ("/s18-got-302", "200"),
        ("/s18-got-303", "200"),
        ("/s13-inactive", "200"),
        ("/s12-host", "200"),
        ("/x5", "503*2,200"),
        ("/s16-429-ra", "429+retry-after=1"),
        ("/s16-hop", "redirect=/s16-hop-404"),
        ("/s16-hop-404", "404"),
        ("/s16-shared", "404"),
        ("/s18-dir/start", "redirect=./next"),
        ("/s18-dir/next", "200"),
        ("/s14-retry-after", "503+retry-after=3600,200"),
    ];
    let mut out: Vec<(String, String)> = fixed
        .iter()
        .map(|(p, s)| ((*p).to_owned(), (*s).to_owned()))
        .collect();
    out.push((
        "/s14".into(),
        format!("503*{},200", retries::s14_retries(time, policy, quick)),
    ));
    out.push((
        "/s14-answer".into(),
        retries::s14_answer_script(time, policy),
    ));
    out
}

/// The ids of every case, in run order (for `--only` and progress bars).
pub const CASE_IDS: &[&str] = &[
    "S5.auth",
    "S5.ping",
    "S5.key-only-as-username",
    "S5.refusals",
    "S2.create-json",
    "S2.create-form",
    "S3.resource",
    "S3.password-read-back",
    "S3.write-back",
    "S4.update",
    "S4.delete",
    "S4.not-found",
    "S1.list",
    "S1.order",
    "S1.page-size",
    "S1.max-page-size",
    "S1.links",
    "S1.full-resources",
    "S2.blank-event-type",
    "S2.defaults",
    "S2.create-multipart",
    "S4.update-form",
    "S6.url-as-sent",
    "S4.unknown-id",
    "S4.update-keeps-state",
    "S6.update-validation",
    "S6.validation",
    "S6.unknown-fields",
    "S6.url-forms",
    "S6.url-length",
    "S4.read-only",
    "S4.partial-update",
    "S4.reactivate-patch",
    "S6.each-rule",
    "S6.event-type-message",
    "S6.too-large",
    "S6.wrong-method",
    "S6.reserved-headers",
    "S6b.samples",
    "X1.emit",
    "S7.method",
    "S7.content-type",
    "S7.user-agent",
    "S7.single-object",
    "S8.basic-auth",
    "S9.additional-headers",
    "S11.payload",
    "X5.no-extra-headers",
    "S8.no-credentials",
    "S8.half-credentials",
    "S9.empty-value",
    "S10.event-types",
    "S11.type-objects",
    "S12.fan-out",
    "S12.one-per-url",
    "S12.oldest-webhook",
    "S12.normalised-url",
    "S12.host-case",
    "S7.query-kept",
    "S12.distinct-urls",
    "S12.dedupe-qualifying",
    "S12.default-port",
    "S12.trailing-slash",
    "S12.dot-segments",
    "S12.inactive-owner",
    "S13.ping",
    "S13.ping-failure",
    "S13.ping-unknown",
    "S13.ping-inactive",
    "S13.ping-2xx",
    "S13.ping-no-answer",
    "X1.emit-kept",
    "S7.utf-8",
    "X1.replace-objects",
    "X1.timestamp-as-given",
    "X1.bad-timestamp",
    "S14.backoff",
    "S14.wait-after-answer",
    "S14.ignores-retry-after",
    "S15.exhaustion",
    "S15.drops-pending",
    "S15.exhaustion-transport",
    "S16.deactivate-4xx",
    "S16.any-4xx",
    "S16.4xx-on-retry",
    "S4.reactivate",
    "S16.4xx-after-redirect",
    "S16.shared-url",
    "S16.stale-verdict",
    "S16.drops-pending",
    "S12.paused",
    "S12.own-retries",
    "S17.success",
    "S17.any-2xx",
    "S18.redirects",
    "S18.redirect-307",
    "S18.redirect-308",
    "S18.redirect-keeps-headers",
    "S18.relative-location",
    "S18.redirect-to-get",
    "S18.redirect-other-origin",
    "S18.transport",
    "S18.refused",
    "S18.timeout",
    "S18.redirect-without-location",
    "S18.slow-answer",
    "X5.same-bytes",
    "S7.every-attempt",
    "X2.delivery-log",
    "X2.attempt-fields",
    "X2.redeliver-retried",
    "X2.own-deliveries",
    "X2.no-secrets",
    "X2.next-attempt-at",
    "S19.stored",
    "S7.every-request",
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
    if let Some(u) = &options.receiver_url {
        if !(u.starts_with("http://") || u.starts_with("https://"))
            || reqwest::Url::parse(u).is_err()
        {
            return Err(SuiteError::ReceiverUrl(u.clone()));
        }
    }
    let mut builder = MockReceiver::builder();
    if let Some(addr) = options.receiver_addr {
        builder = builder.addr(addr);
    }
    for (path, script) in routes(target.time, &target.policy, options.quick) {
        builder = builder
            .route(&path, &script)
            .map_err(|e| SuiteError::Mock(format!("route {path} {script:?}: {e}")))?;
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
    if !options.allow_existing_webhooks {
        if let Ok((200, v)) = api.get_json("/v1/webhooks?page_size=1").await {
            let count = v["count"].as_u64().unwrap_or(0);
            if count > 0 {
                return Err(SuiteError::ExistingWebhooks {
                    url: target.url.clone(),
                    count,
                });
            }
        }
    }
    let receiver_base = options
        .receiver_url
        .clone()
        .unwrap_or_else(|| mock.url())
        .trim_end_matches('/')
        .to_owned();
    let mut ctx = Ctx {
        api,
        mock,
        receiver_base,
        time: target.time,
        policy: target.policy,
        quick: options.quick,
        created: Vec::new(),
        overhead: Duration::ZERO,
        violations: Vec::new(),
    };
    let mut report = Report::new("dispatcher-conformance", target.url.clone());
    let wanted = |id: &str| selected(id, &options.only);
    let mut stop = options.stop.clone();

    // Cases are grouped: one function may report several ids from one observation.
    type CaseFn = for<'a> fn(&'a mut Ctx) -> futures_box::BoxFut<'a>;
    let groups: &[(&[&str], CaseFn)] = &[
        (
            &[
                "S5.auth",
                "S5.ping",
                "S5.key-only-as-username",
                "S5.refusals",
            ],
            |c| Box::pin(s5_auth(c)),
        ),
        (&["S2.create-json", "S2.create-form", "S3.resource"], |c| {
            Box::pin(s2_create(c))
        }),
        (&["S3.password-read-back", "S3.write-back"], |c| {
            Box::pin(s3_password(c))
        }),
        (&["S4.update", "S4.delete", "S4.not-found"], |c| {
            Box::pin(s4_update_delete(c))
        }),
        (
            &[
                "S1.list",
                "S1.order",
                "S1.page-size",
                "S1.max-page-size",
                "S1.links",
                "S1.full-resources",
            ],
            |c| Box::pin(s1_list(c)),
        ),
        (&["S2.blank-event-type"], |c| {
            Box::pin(s2_blank_event_type(c))
        }),
        (
            &[
                "S2.defaults",
                "S2.create-multipart",
                "S4.update-form",
                "S6.url-as-sent",
            ],
            |c| Box::pin(s2_defaults(c)),
        ),
        (
            &[
                "S4.unknown-id",
                "S4.update-keeps-state",
                "S6.update-validation",
            ],
            |c| Box::pin(s4_more(c)),
        ),
        (&["S6.validation"], |c| Box::pin(s6_validation(c))),
        (
            &["S6.unknown-fields", "S6.url-forms", "S6.url-length"],
            |c| Box::pin(s6_limits(c)),
        ),
        (
            &["S4.read-only", "S4.partial-update", "S4.reactivate-patch"],
            |c| Box::pin(s4_fields(c)),
        ),
        (
            &[
                "S6.each-rule",
                "S6.event-type-message",
                "S6.too-large",
                "S6.wrong-method",
            ],
            |c| Box::pin(s6_rules(c)),
        ),
        (&["S6.reserved-headers"], |c| {
            Box::pin(s6_reserved_headers(c))
        }),
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
                "X5.no-extra-headers",
            ],
            |c| Box::pin(s7_request(c)),
        ),
        (
            &["S8.no-credentials", "S8.half-credentials", "S9.empty-value"],
            |c| Box::pin(s8_credentials(c)),
        ),
        (&["S10.event-types", "S11.type-objects"], |c| {
            Box::pin(s10_event_types(c))
        }),
        (
            &["S12.fan-out", "S12.one-per-url", "S12.oldest-webhook"],
            |c| Box::pin(s12_fan_out(c)),
        ),
        (&["S12.normalised-url"], |c| Box::pin(s12_normalised_url(c))),
        (&["S12.host-case"], |c| Box::pin(s12_host_case(c))),
        (
            &[
                "S7.query-kept",
                "S12.distinct-urls",
                "S12.dedupe-qualifying",
            ],
            |c| Box::pin(s12_distinct_urls(c)),
        ),
        (
            &[
                "S12.default-port",
                "S12.trailing-slash",
                "S12.dot-segments",
                "S12.inactive-owner",
            ],
            |c| Box::pin(s12_url_forms(c)),
        ),
        (
            &[
                "S13.ping",
                "S13.ping-failure",
                "S13.ping-unknown",
                "S13.ping-inactive",
                "S13.ping-2xx",
                "S13.ping-no-answer",
            ],
            |c| Box::pin(s13_ping(c)),
        ),
        (&["X1.emit-kept", "S7.utf-8"], |c| Box::pin(x1_emit_kept(c))),
        (
            &[
                "X1.replace-objects",
                "X1.timestamp-as-given",
                "X1.bad-timestamp",
            ],
            |c| Box::pin(x1_emit_rules(c)),
        ),
        (&["S14.backoff"], |c| Box::pin(s14_backoff(c))),
        (&["S14.wait-after-answer"], |c| {
            Box::pin(s14_wait_after_answer(c))
        }),
        (&["S14.ignores-retry-after"], |c| {
            Box::pin(s14_retry_after(c))
        }),
        (
            &[
                "S15.exhaustion",
                "S15.drops-pending",
                "S15.exhaustion-transport",
            ],
            |c| Box::pin(s15_exhaustion(c)),
        ),
        (
            &[
                "S16.deactivate-4xx",
                "S16.any-4xx",
                "S16.4xx-on-retry",
                "S4.reactivate",
                "S16.4xx-after-redirect",
                "S16.shared-url",
            ],
            |c| Box::pin(s16_deactivate(c)),
        ),
        (&["S16.stale-verdict"], |c| Box::pin(s16_stale_verdict(c))),
        (&["S16.drops-pending", "S12.paused"], |c| {
            Box::pin(s16_drops_pending(c))
        }),
        (&["S12.own-retries"], |c| Box::pin(s12_own_retries(c))),
        (&["S17.success", "S17.any-2xx"], |c| {
            Box::pin(s17_success(c))
        }),
        (
            &[
                "S18.redirects",
                "S18.redirect-307",
                "S18.redirect-308",
                "S18.redirect-keeps-headers",
                "S18.relative-location",
            ],
            |c| Box::pin(s18_redirects(c)),
        ),
        (&["S18.redirect-to-get"], |c| {
            Box::pin(s18_redirect_to_get(c))
        }),
        (&["S18.redirect-other-origin"], |c| {
            Box::pin(s18_redirect_other_origin(c))
        }),
        (
            &[
                "S18.transport",
                "S18.refused",
                "S18.timeout",
                "S18.redirect-without-location",
            ],
            |c| Box::pin(s18_transport(c)),
        ),
        (&["S18.slow-answer"], |c| Box::pin(s18_slow_answer(c))),
        (
            &[
                "X5.same-bytes",
                "S7.every-attempt",
                "X2.delivery-log",
                "X2.attempt-fields",
                "X2.redeliver-retried",
                "X2.own-deliveries",
                "X2.no-secrets",
                "X2.next-attempt-at",
            ],
            |c| Box::pin(x5_same_bytes(c)),
        ),
        (&["S19.stored"], |c| Box::pin(s19_stored(c))),
    ];

    let stopped = |stop: &Option<watch::Receiver<bool>>| stop.as_ref().is_some_and(|s| *s.borrow());
    for (ids, case) in groups {
        let ids: Vec<&str> = ids.iter().copied().filter(|id| wanted(id)).collect();
        if ids.is_empty() {
            continue;
        }
        if stopped(&stop) {
            report.interrupted = true;
            break;
        }
        progress.start(ids[0]);
        ctx.mock.clear();
        let t0 = std::time::Instant::now();
        let out = {
            let fut = case(&mut ctx);
            match stop.as_mut() {
                None => Some(fut.await),
                Some(rx) => tokio::select! {
                    out = fut => Some(out),
                    _ = rx.wait_for(|s| *s) => None,
                },
            }
        };
        ctx.collect_violations();
        ctx.cleanup().await;
        let Some(out) = out else {
            report.interrupted = true;
            break;
        };
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
    if wanted("S7.every-request") && !report.interrupted && !report.cases.is_empty() {
        let v = &ctx.violations;
        let r = CaseResult::check(
            "S7.every-request",
            "S7,S11",
            v.is_empty(),
            "every request the receiver got in the whole run passes its checks (POST, Content-Type: application/json, User-Agent: skilljar, one JSON object with event_type and timestamp)",
            if v.is_empty() {
                "no violation in any request".to_owned()
            } else {
                format!(
                    "{} violation(s): {}",
                    v.len(),
                    v.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
                )
            },
        );
        progress.done(&r);
        report.cases.push(r);
    }
    ctx.mock.shutdown().await;
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
