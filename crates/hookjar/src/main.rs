//! `hookjar`: test webhooks that follow the Skilljar Webhooks API.
//!
//! # Layout
//! - `main.rs` — the clap command tree and dispatch to one module per command.
//! - `cmd/*.rs` — one command each: parse flags into plain data, call the libraries,
//!   print. No rule lives here: rules are in `hookjar-core`.
//! - `exit.rs` — exit codes (0 success, 1 the thing tested failed, 2 bad usage or
//!   input, 3 an environment problem), the same for every command.
//!
//! `anyhow` is used only in this binary; the libraries return typed errors.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;
mod exit;

/// Test webhooks that follow the Skilljar Webhooks API.
///
/// hookjar runs a reference dispatcher that behaves like Skilljar (management API,
/// delivery, retries with back-off, deactivation, ping), a scriptable mock receiver,
/// and conformance suites for dispatchers and for your webhook endpoint.
///
/// Start with `hookjar conformance` (proves the reference dispatcher honours the
/// spec) or `hookjar check URL` (checks your endpoint the way Skilljar treats it).
#[derive(Debug, Parser)]
#[command(
    name = "hookjar",
    version,
    propagate_version = true,
    max_term_width = 100
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the dispatcher conformance suite (self-hosted by default).
    Conformance(cmd::conformance::Args),
    /// Check your webhook endpoint the way Skilljar will treat it.
    Check(cmd::check::Args),
    /// Send one event to a URL exactly as Skilljar would, and explain the answer.
    Send(cmd::send::Args),
    /// Send every fixture in a folder, or every request of a mock journal, to a URL.
    Replay(cmd::replay::Args),
    /// Show, in virtual time, what the dispatcher does against a scripted receiver.
    Simulate(cmd::simulate::Args),
    /// Run the scriptable mock receiver.
    Mock(cmd::mock::Args),
    /// Run the reference dispatcher (management API and delivery engine).
    Serve(cmd::serve::Args),
    /// Emit an event through a running dispatcher (`POST /v1/events`).
    Emit(cmd::emit::Args),
    /// Print the retry schedule of S14–S15: every attempt, its delay and when it is sent.
    Schedule(cmd::schedule::Args),
    /// List or print the fixture payloads of the ten event types.
    #[command(subcommand)]
    Fixtures(cmd::fixtures::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Conformance(a) => cmd::conformance::run(a),
        Command::Check(a) => cmd::check::run(a),
        Command::Send(a) => cmd::send::run(a),
        Command::Replay(a) => cmd::replay::run(a),
        Command::Simulate(a) => cmd::simulate::run(a),
        Command::Mock(a) => cmd::mock::run(a),
        Command::Serve(a) => cmd::serve::run(a),
        Command::Emit(a) => cmd::emit::run(a),
        Command::Schedule(a) => cmd::schedule::run(a),
        Command::Fixtures(c) => cmd::fixtures::run(c),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", render_error(&err));
            ExitCode::from(exit::code_of(&err))
        }
    }
}

/// The error and its causes joined by `: `, skipping a cause whose text the message
/// already contains (library errors often quote their source).
fn render_error(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn errors_do_not_repeat_their_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "Address already in use");
        let err =
            anyhow::Error::new(io).context("cannot listen on 127.0.0.1:1: Address already in use");
        assert_eq!(
            super::render_error(&err),
            "cannot listen on 127.0.0.1:1: Address already in use"
        );
        let err = anyhow::anyhow!("root cause").context("while doing x");
        assert_eq!(super::render_error(&err), "while doing x: root cause");
    }

    #[test]
    fn cli_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
