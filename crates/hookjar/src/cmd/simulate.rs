//! `hookjar simulate` — not implemented yet (issue #5).

use std::process::ExitCode;

/// Not implemented yet (issue #5).
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    crate::cmd::util::not_implemented("simulate", 5)
}
