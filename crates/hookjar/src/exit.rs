//! Exit codes, in one place: the convention of `docs/cli.md`, the same for every
//! command.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | the thing tested failed: a failed check or case, a non-2xx outcome, a simulated deactivation |
//! | 2 | bad usage or input: an unknown flag, a bad value, an unknown event type, a file that is not what it should be |
//! | 3 | an environment problem: I/O, the network, a port in use |
//!
//! clap refuses bad flags and values with 2 itself. A command returns
//! [`BadInput`] (through `anyhow`) for input it can only judge once it reads it;
//! any other error is an environment problem.

use std::fmt;

/// Everything passed.
#[allow(dead_code)] // ExitCode::SUCCESS is used; this names it in the table.
pub const SUCCESS: u8 = 0;
/// A check or conformance case failed, an endpoint answered non-2xx, a simulated
/// delivery ended in deactivation (the command itself worked).
pub const FAILED: u8 = 1;
/// Bad usage or input: clap's own code for unknown flags and bad values, and
/// [`BadInput`].
pub const USAGE: u8 = 2;
/// The command could not do its work: I/O, network, a port in use, ….
pub const ERROR: u8 = 3;

/// Input the user gave that cannot be used; exits with [`USAGE`]. The message names
/// the value and says what to give instead.
#[derive(Debug)]
pub struct BadInput(pub String);

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// `Err(BadInput(message))` as an `anyhow::Error`.
pub fn bad_input(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(BadInput(message.into()))
}

/// The exit code of a command's error: [`USAGE`] when any cause is [`BadInput`],
/// else [`ERROR`].
pub fn code_of(err: &anyhow::Error) -> u8 {
    if err.chain().any(|c| c.is::<BadInput>()) {
        USAGE
    } else {
        ERROR
    }
}
