//! `hookjar mock` — not implemented yet (issue #3).

use std::process::ExitCode;

/// Not implemented yet (issue #3).
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    crate::cmd::util::not_implemented("mock", 3)
}
