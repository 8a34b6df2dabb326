//! `hookjar conformance`: the dispatcher conformance suite.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use hookjar_conformance::CaseResult;
use hookjar_conformance::suite::{self, CASE_IDS, Options, Target, TimeMode};
use hookjar_core::RetryPolicy;
use tokio::sync::watch;

use super::flags::{PolicyFlags, ReportFlags};
use super::util::{Format, color_stdout, parse_time_scale, runtime};

/// The exit code of a run stopped by SIGINT or SIGTERM (128 + SIGINT, as shells do).
const INTERRUPTED: u8 = 130;

/// Run the dispatcher conformance suite: one named case per clause of the spec
/// (S1.list, S7.content-type, S14.backoff, S15.exhaustion, S16.deactivate-4xx, …), each
/// driving a dispatcher through its HTTP API and watching what it sends through
/// hookjar's mock receiver.
///
/// Without --server it starts the reference dispatcher in-process, on an in-memory
/// store, in virtual time: the whole suite, including the full 61-attempt / 50-hour
/// retry life-cycle, takes seconds. With --server it tests any dispatcher that speaks
/// the Skilljar webhooks API plus hookjar's POST /v1/events (X1) and delivery log (X2).
/// The dispatcher must reach the suite's mock receiver: by default it listens on this
/// machine's loopback; for a dispatcher in a container or on another host, use
/// --receiver-addr and --receiver-url. The suite creates (and deletes) its own
/// webhooks, and refuses a server that already has some (they would receive its
/// events) unless --allow-existing-webhooks.
///
/// Each case's result is printed as it ends. Timing cases compare gaps in wall time;
/// one the --time-scale cannot resolve is INCONCLUSIVE (never passed; the report
/// names the largest scale that resolves it). SIGINT/SIGTERM stops the run, deletes
/// the suite's webhooks, writes the reports for what ran and exits 130.
///
/// Exit code 0 only when no case fails (skipped and inconclusive cases do not fail a
/// run, unless --strict).
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
    /// The server's retry policy (S14–S15), when it is not Skilljar's: --base-delay,
    /// --max-delay and --retry-limit (only with --server).
    #[command(flatten)]
    pub policy: PolicyFlags,
    /// Keep only the first retries of the time-dependent cases; skip the 50-hour
    /// exhaustion case (useful with --server in real time).
    #[arg(long)]
    pub quick: bool,
    /// Only this clause or case (repeatable): --only S14 runs S14.*, --only S1 runs S1.*
    /// (not S10–S19), --only S18.transport runs that one case.
    #[arg(long, value_name = "PREFIX")]
    pub only: Vec<String>,
    /// Where the suite's mock receiver listens, e.g. 0.0.0.0:9000 (default: a free
    /// port on 127.0.0.1).
    #[arg(long, value_name = "ADDR")]
    pub receiver_addr: Option<SocketAddr>,
    /// The base URL the dispatcher is told to POST to, e.g.
    /// http://host.docker.internal:9000 (default: the receiver's own URL).
    #[arg(long, value_name = "URL")]
    pub receiver_url: Option<String>,
    /// Run even when --server already has webhooks: they receive the suite's events,
    /// and cases that count a server's webhooks may fail.
    #[arg(long)]
    pub allow_existing_webhooks: bool,
    /// INCONCLUSIVE cases fail the run (exit 1; JUnit lists them as failures, JSON
    /// says "passed": false): a CI job at a high --time-scale then cannot pass a
    /// dispatcher whose timing that scale could not check.
    #[arg(long)]
    pub strict: bool,
    #[command(flatten)]
    pub report: ReportFlags,
}

/// Prints each case's line as it ends (stdout for the table, stderr beside JSON),
/// under a progress bar on stderr (hidden when stderr is no terminal or --quiet).
struct Streaming {
    bar: indicatif::ProgressBar,
    to_stdout: bool,
    quiet: bool,
    color: bool,
    id_w: usize,
}

impl Streaming {
    fn new(quiet: bool, total: u64, to_stdout: bool) -> Self {
        use std::io::IsTerminal as _;
        let bar = if !quiet && std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(total);
            if let Ok(style) = indicatif::ProgressStyle::with_template("{pos}/{len} {msg}") {
                bar.set_style(style);
            }
            bar
        } else {
            indicatif::ProgressBar::hidden()
        };
        Streaming {
            bar,
            to_stdout,
            quiet,
            color: color_stdout(),
            id_w: CASE_IDS.iter().map(|id| id.len()).max().unwrap_or(4),
        }
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

impl hookjar_conformance::check::Progress for Streaming {
    fn start(&mut self, id: &str) {
        self.bar.set_message(id.to_owned());
        self.bar.tick();
    }

    fn done(&mut self, result: &CaseResult) {
        self.bar.inc(1);
        let line = result.to_line(self.color, true, self.id_w);
        if self.to_stdout {
            self.bar.suspend(|| {
                print!("{line}");
                let _ = std::io::stdout().flush();
            });
        } else if !self.quiet {
            self.bar.suspend(|| eprint!("{line}"));
        }
    }
}

/// Fails before the run when an output file cannot be written.
fn check_output(path: &std::path::Path) -> anyhow::Result<()> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(drop)
        .with_context(|| {
            format!(
                "cannot write the JUnit report to {} (checked before running); give a path in a directory that exists and is writable",
                path.display()
            )
        })
}

/// A watch that turns true on SIGINT or SIGTERM.
fn stop_on_signals() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let term = signal(SignalKind::terminate());
            let int = signal(SignalKind::interrupt());
            if let (Ok(mut term), Ok(mut int)) = (term, int) {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            } else {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        eprintln!(
            "interrupted: deleting the suite's webhooks and writing the reports for what ran"
        );
        let _ = tx.send(true);
    });
    rx
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut options = Options {
        quick: args.quick,
        only: args.only.clone(),
        receiver_addr: args.receiver_addr,
        receiver_url: args.receiver_url.clone(),
        allow_existing_webhooks: args.allow_existing_webhooks,
        ..Options::default()
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
    let policy = args.policy.policy(2)?;
    if args.server.is_none() && policy != RetryPolicy::default() {
        anyhow::bail!(
            "--base-delay, --max-delay and --retry-limit describe the policy of --server's dispatcher; the self-hosted run uses Skilljar's (add --server URL)"
        );
    }
    if let Some(path) = &args.report.junit {
        check_output(path)?;
    }
    let table = args.report.format == Format::Table;
    if table {
        println!(
            "dispatcher-conformance — {}",
            args.server
                .as_deref()
                .unwrap_or("self-hosted reference dispatcher (in-memory store, virtual time)")
        );
    }
    let mut progress = Streaming::new(args.report.quiet, total as u64, table);
    let mut report = match &args.server {
        None => hookjar_conformance::virtual_runtime()?.block_on(async {
            options.stop = Some(stop_on_signals());
            suite::run_self_hosted(&options, &mut progress).await
        })?,
        Some(url) => {
            let api_key = args.api_key.clone().ok_or_else(|| {
                crate::exit::bad_input("--server needs --api-key (or HOOKJAR_API_KEY)")
            })?;
            let target = Target {
                url: url.clone(),
                api_key,
                time: TimeMode::Scaled(args.time_scale),
                policy,
            };
            runtime()?.block_on(async {
                options.stop = Some(stop_on_signals());
                suite::run(&target, &options, &mut progress).await
            })?
        }
    };
    drop(progress);
    report.strict = args.strict;
    // The case lines were streamed; the table ends with the totals.
    match args.report.format {
        Format::Table => print!("{}", report.summary()),
        Format::Json => println!("{}", report.to_json()),
    }
    if let Some(path) = &args.report.junit {
        std::fs::write(path, report.to_junit())
            .with_context(|| format!("cannot write the JUnit report to {}", path.display()))?;
    }
    let inconclusive = report.totals().inconclusive;
    if inconclusive > 0 && !report.interrupted && !args.report.quiet {
        eprintln!("{}", inconclusive_advice(&report));
    }
    Ok(if report.interrupted {
        ExitCode::from(INTERRUPTED)
    } else if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::exit::FAILED)
    })
}

/// What to do about a run's INCONCLUSIVE cases: the scale that resolves them all, and
/// whether they fail the run.
fn inconclusive_advice(report: &hookjar_conformance::Report) -> String {
    let n = report.totals().inconclusive;
    let cases = if n == 1 { "case" } else { "cases" };
    let resolve = report
        .cases
        .iter()
        .filter(|c| c.status == hookjar_conformance::Status::Inconclusive)
        .map(|c| c.max_time_scale)
        .try_fold(f64::INFINITY, |low, s| s.map(|s| low.min(s)))
        .filter(|s| s.is_finite())
        .map_or_else(
            || "a lower --time-scale resolves them".to_owned(),
            |s| format!("--time-scale {} or lower resolves them", s.floor().max(1.0)),
        );
    if report.strict {
        let fail = if n == 1 { "fails" } else { "fail" };
        format!("{n} INCONCLUSIVE {cases} {fail} this run (--strict); {resolve}")
    } else {
        format!(
            "{n} INCONCLUSIVE {cases} did not fail this run; {resolve}, and --strict makes them fail it"
        )
    }
}
