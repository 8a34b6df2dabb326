//! `hookjar check URL`: the integrator endpoint check.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use hookjar_conformance::check::{self, CheckConfig};
use hookjar_core::EventType;

use super::util::{
    Format, SuiteProgress, finish_report, parse_basic_auth, parse_duration, parse_header, runtime,
    wall_now,
};

/// Check your webhook endpoint the way Skilljar will treat it.
///
/// Sends, with Skilljar's headers (Content-Type: application/json, User-Agent: skilljar,
/// your Basic auth and additional headers), each of the ten event types and a ping, and
/// expects a 2xx for each. With --basic-auth or -H it also sends forged requests (no or
/// wrong credentials) and expects your endpoint to REJECT them with a 4xx. It sends one
/// payload twice (a retry after a lost answer) and one with unknown fields; both must be
/// accepted. Every answer must come within the timeout.
///
/// For every answer that is not a 2xx it says what Skilljar would do: a 4xx deactivates
/// the webhook at once; a 5xx or a timeout is retried 60 times over ~50 h, then the
/// webhook is deactivated. Exit code 0 when every case passes, 1 when one fails.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Your endpoint, e.g. https://example.com/skilljar-webhook.
    pub url: String,
    /// The Basic auth your webhook is configured with, as user:pass.
    #[arg(long, value_name = "USER:PASS", value_parser = parse_basic_auth)]
    pub basic_auth: Option<(String, String)>,
    /// An additional header your webhook is configured with, as 'name: value'
    /// (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// How long Skilljar waits for an answer (warn past half of it).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Only these event types (repeatable; default: all ten).
    #[arg(long = "type", value_name = "TYPE")]
    pub types: Vec<EventType>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Also write a JUnit XML report to this file (for CI).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// No progress spinner.
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    hookjar_core::webhook::validate_target_url(&args.url).map_err(|e| {
        anyhow::anyhow!(
            "{:?} is not a URL Skilljar would accept ({}); give an absolute http(s) URL",
            args.url,
            e.join(" ")
        )
    })?;
    let mut config = CheckConfig::new(&args.url);
    config.basic_auth = args.basic_auth;
    config.headers = args.headers.into_iter().collect();
    config.timeout = args.timeout;
    if !args.types.is_empty() {
        config.types = args.types;
    }
    // Types, ping, auth (two cases, or one skip), two per header, duplicate,
    // unknown-fields, latency.
    let auth_cases = if config.basic_auth.is_some() { 2 } else { 1 };
    let total = config.types.len() + 1 + auth_cases + 2 * config.headers.len() + 3;
    let mut progress = SuiteProgress::new(args.quiet, Some(total as u64));
    let report = runtime()?.block_on(check::run(&config, wall_now, &mut progress))?;
    drop(progress);
    finish_report(&report, args.format, args.junit.as_deref())
}
