//! `hookjar conformance`: the dispatcher conformance suite.

use std::process::ExitCode;

use hookjar_conformance::suite::{self, CASE_IDS, Options, Target, TimeMode};
use hookjar_core::RetryPolicy;

use super::flags::ReportFlags;
use super::util::{SuiteProgress, finish_report, parse_time_scale, runtime};

/// Run the dispatcher conformance suite: one named case per clause of the spec
/// (S1.list, S7.content-type, S14.backoff, S15.exhaustion, S16.deactivate-4xx, …), each
/// driving a dispatcher through its HTTP API and watching what it sends through
/// hookjar's mock receiver.
///
/// Without --server it starts the reference dispatcher in-process, on an in-memory
/// store, in virtual time: the whole suite, including the full 61-attempt / 50-hour
/// retry life-cycle, takes seconds. With --server it tests any dispatcher that speaks
/// the Skilljar webhooks API plus hookjar's POST /v1/events (X1) and delivery log (X2);
/// it must be able to reach this machine's loopback, where the mock receiver listens.
/// The suite creates (and deletes) its own webhooks; webhooks the server already has
/// also receive the events it emits, so prefer a dispatcher of its own.
///
/// Exit code 0 only when every case passes.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A running dispatcher to test, e.g. http://127.0.0.1:8750 (default: start the
    /// reference dispatcher in-process).
    #[arg(long, value_name = "URL", value_parser = super::util::parse_server_url)]
    pub server: Option<String>,
    /// The API key of --server (also read from HOOKJAR_API_KEY; ignored without
    /// --server).
    #[arg(long, env = "HOOKJAR_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// The --time-scale the server runs with (X3): waits and gap checks adapt to it.
    #[arg(
        long,
        default_value_t = 1.0,
        requires = "server",
        value_name = "N",
        value_parser = parse_time_scale
    )]
    pub time_scale: f64,
    /// Keep only the first retries of the time-dependent cases; skip the 50-hour
    /// exhaustion case (useful with --server in real time).
    #[arg(long)]
    pub quick: bool,
    /// Only this clause or case (repeatable): --only S14 runs S14.*, --only S1 runs S1.list
    /// (not S10–S19), --only S18.transport runs that one case.
    #[arg(long, value_name = "PREFIX")]
    pub only: Vec<String>,
    #[command(flatten)]
    pub report: ReportFlags,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let options = Options {
        quick: args.quick,
        only: args.only.clone(),
    };
    let total = CASE_IDS
        .iter()
        .filter(|id| suite::selected(id, &options.only))
        .count();
    if total == 0 {
        return Err(crate::exit::bad_input(format!(
            "no case matches --only {}; the cases are: {}",
            args.only.join(" --only "),
            CASE_IDS.join(", ")
        )));
    }
    let mut progress = SuiteProgress::new(args.report.quiet, Some(total as u64));
    let report = match &args.server {
        None => hookjar_conformance::virtual_runtime()?
            .block_on(suite::run_self_hosted(&options, &mut progress))?,
        Some(url) => {
            let api_key = args.api_key.clone().ok_or_else(|| {
                crate::exit::bad_input("--server needs --api-key (or HOOKJAR_API_KEY)")
            })?;
            let target = Target {
                url: url.clone(),
                api_key,
                time: TimeMode::Scaled(args.time_scale),
                policy: RetryPolicy::default(),
            };
            runtime()?.block_on(suite::run(&target, &options, &mut progress))?
        }
    };
    drop(progress);
    finish_report(&report, args.report.format, args.report.junit.as_deref())
}
