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
/// wrong credentials) and expects your endpoint to REJECT them with a 4xx. It sends each
/// payload twice (a retry after a lost answer), with unknown fields, with real names and
/// titles (O'Brien, Siobhán, quotes, an emoji), and stamped 50 hours ago after newer
/// ones (Skilljar's last retry resends an event's first bytes, and events come in no
/// promised order), and one of each type all at once (Skilljar delivers side by side);
/// all must be accepted. These probes run for every type your endpoint accepted. An event of a type Skilljar may add, and one stamped 30 s in your future,
/// should be accepted too (a warning otherwise). Every answer must come within the
/// timeout, and within Skilljar's own 10 s whatever --timeout says. Each request goes
/// on a new connection, as Python's requests sends it; about 100 requests in all with
/// ten types and Basic auth.
///
/// For every answer that is not a 2xx it says what Skilljar would do: a 4xx deactivates
/// the webhook at once; a 5xx or a timeout is retried 60 times over ~50 h, then the
/// webhook is deactivated. Exit code 0 when every case passes (warnings included), 1
/// when one fails.
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
    let total = check::case_count(&config);
    let mut progress = SuiteProgress::new(args.report.quiet, Some(total as u64));
    let report = runtime()?.block_on(check::run(&config, wall_now, &mut progress))?;
    drop(progress);
    finish_report(&report, args.report.format, args.report.junit.as_deref())
}
