//! `hookjar emit` — not implemented yet (issue #4).

use std::process::ExitCode;

/// Not implemented yet (issue #4).
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    crate::cmd::util::not_implemented("emit", 4)
}
