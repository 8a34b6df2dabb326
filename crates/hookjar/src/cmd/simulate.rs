//! `hookjar simulate`: the dispatcher's timeline against a scripted receiver.

use std::process::ExitCode;
use std::time::Duration;

use hookjar_conformance::simulate::{SimulateConfig, simulate};
use hookjar_core::EventType;

use super::flags::PolicyFlags;
use super::util::{Format, parse_timeout};

/// Show what the reference dispatcher does with one event when the receiver answers
/// with a script, in virtual time: every attempt with its virtual time, the answer,
/// the verdict and the wait before the next attempt, then the webhook's end state.
///
/// The script is the mock receiver's language (see `hookjar mock --help`): `503*3,200`
/// fails three times then accepts; `503` fails forever (61 attempts over ~50 h, then
/// RETRY_COUNT); `404` deactivates at once; `redirect` loops (TOO_MANY_REDIRECTS);
/// `reset` and `hang` are transport failures. Nothing waits in real time.
///
/// Exit code 0 when the webhook is still active at the end, 1 when the simulated
/// dispatcher deactivated it, 2 for a bad script, type or flag.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The receiver's script, e.g. '503*3,200'.
    #[arg(long, value_name = "SCRIPT", value_parser = parse_script)]
    pub script: String,
    /// The event type emitted.
    #[arg(
        long = "type",
        value_name = "TYPE",
        default_value = "COURSE_ENROLLMENT"
    )]
    pub event_type: EventType,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    #[command(flatten)]
    pub policy: PolicyFlags,
    /// The dispatcher's request timeout (what `hang` runs into).
    #[arg(long, default_value = "10s", value_parser = parse_timeout)]
    pub timeout: Duration,
}

/// `--script`: checked up front, with an error that points at the bad token.
fn parse_script(s: &str) -> Result<String, String> {
    hookjar_core::script::Script::parse(s)
        .map(|_| s.to_owned())
        .map_err(|e| format!("{e}\n{}", e.snippet()))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let policy = args.policy.policy(2)?;
    let config = SimulateConfig {
        script: args.script,
        event_type: args.event_type,
        policy,
        timeout: args.timeout,
    };
    let timeline = hookjar_conformance::virtual_runtime()?.block_on(simulate(&config))?;
    match args.format {
        Format::Table => print!("{}", timeline.to_table()),
        Format::Json => println!("{}", serde_json::to_string_pretty(&timeline)?),
    }
    Ok(if timeline.final_state.active {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::exit::FAILED)
    })
}
