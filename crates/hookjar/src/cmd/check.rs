//! `hookjar check URL`: the integrator endpoint check.

use std::process::ExitCode;

use hookjar_conformance::check::{self, CheckConfig};
use hookjar_core::EventType;

use super::flags::{ReportFlags, SendFlags};
use super::util::{SuiteProgress, finish_report, parse_target_url, runtime, wall_now};

/// Check your webhook endpoint the way Skilljar will treat it.
///
/// Sends, with Skilljar's headers (Content-Type: application/json, User-Agent: skilljar,
/// your Basic auth and additional headers), each of the ten event types and a ping, and
/// expects a 2xx for each. With --basic-auth or -H it also sends forged requests (no or
/// wrong credentials) and expects your endpoint to REJECT them with a 4xx. It sends one
/// payload twice (a retry after a lost answer), one with unknown fields, and one stamped
/// 50 hours ago after newer ones (Skilljar's last retry resends an event's first bytes,
/// and events come in no promised order); all must be accepted. Every answer must come
/// within the timeout, and within Skilljar's own 10 s whatever --timeout says.
///
/// For every answer that is not a 2xx it says what Skilljar would do: a 4xx deactivates
/// the webhook at once; a 5xx or a timeout is retried 60 times over ~50 h, then the
/// webhook is deactivated. Exit code 0 when every case passes, 1 when one fails.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Your endpoint, e.g. https://example.com/skilljar-webhook.
    #[arg(value_parser = parse_target_url)]
    pub url: String,
    #[command(flatten)]
    pub send: SendFlags,
    /// Only these event types (repeatable; default: all ten).
    #[arg(long = "type", value_name = "TYPE")]
    pub types: Vec<EventType>,
    #[command(flatten)]
    pub report: ReportFlags,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut config = CheckConfig::new(&args.url);
    config.basic_auth = args.send.basic_auth.clone();
    config.headers = args.send.header_map()?;
    config.timeout = args.send.timeout;
    if !args.types.is_empty() {
        config.types = args.types;
    }
    // Types, ping, auth (two cases, or one skip), two per header, duplicate,
    // unknown-fields, latency.
    let auth_cases = if config.basic_auth.is_some() { 2 } else { 1 };
    let total = config.types.len() + 1 + auth_cases + 2 * config.headers.len() + 3;
    let mut progress = SuiteProgress::new(args.report.quiet, Some(total as u64));
    let report = runtime()?.block_on(check::run(&config, wall_now, &mut progress))?;
    drop(progress);
    finish_report(&report, args.report.format, args.report.junit.as_deref())
}
