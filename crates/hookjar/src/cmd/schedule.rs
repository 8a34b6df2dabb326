//! `hookjar schedule`: the retry schedule of S14–S15.

use std::process::ExitCode;
use std::time::Duration;

use hookjar_core::RetryPolicy;
use hookjar_core::verdict::human_duration;
use serde_json::json;

use super::flags::PolicyFlags;
use super::util::{Format, secs_json};

/// Print every POST of a delivery that keeps failing: the attempt number, the wait
/// before it, and when it is sent counted from the first POST.
///
/// With the defaults this is Skilljar's schedule: the first POST, then 60 retries
/// waiting 2 s, 4 s, 8 s, … doubling up to one hour, 180,494 s (about 50.1 hours) in
/// all. If the last retry fails too, the webhook is deactivated with RETRY_COUNT.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    #[command(flatten)]
    pub policy: PolicyFlags,
    /// Each wait is the previous one times this (a whole number, at least 1).
    #[arg(long, default_value_t = 2, value_parser = parse_factor)]
    pub factor: u32,
}

/// `--factor`: a whole number ≥ 1.
fn parse_factor(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "{s:?} is not a back-off factor; give a whole number of at least 1 (Skilljar doubles: 2)"
        )),
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let policy = args.policy.policy(args.factor)?;
    print!("{}", render(&policy, args.format));
    Ok(ExitCode::SUCCESS)
}

/// The schedule as text, table or JSON.
pub fn render(policy: &RetryPolicy, format: Format) -> String {
    let schedule = policy.schedule();
    match format {
        Format::Json => {
            let attempts: Vec<_> = schedule
                .iter()
                .map(|a| json!({"attempt": a.attempt, "delay_s": secs_json(a.delay), "at_s": secs_json(a.at)}))
                .collect();
            let doc = json!({
                "retries": policy.max_retries,
                "attempts": attempts,
                "total_s": secs_json(policy.total()),
            });
            format!("{}\n", serde_json::to_string_pretty(&doc).expect("JSON"))
        }
        Format::Table => {
            let mut out = String::from("attempt  delay      at (from first POST)\n");
            for a in &schedule {
                let delay = if a.attempt == 0 {
                    "-".to_owned()
                } else {
                    human_duration(a.delay)
                };
                out.push_str(&format!(
                    "{:>7}  {:<9}  {} ({})\n",
                    a.attempt,
                    delay,
                    human_duration(a.at),
                    secs_text(a.at)
                ));
            }
            out.push_str(&format!(
                "{} retries after the first POST; {} ({}) of waiting; if the last retry fails the webhook is deactivated (RETRY_COUNT).\n",
                policy.max_retries,
                human_duration(policy.total()),
                secs_text(policy.total()),
            ));
            out
        }
    }
}

fn secs_text(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.3} s", d.as_secs_f64())
    }
}
