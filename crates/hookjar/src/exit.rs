//! Exit codes, in one place.

/// Everything passed.
#[allow(dead_code)]
pub const SUCCESS: u8 = 0;
/// A check or conformance case failed (the command itself worked).
pub const FAILED: u8 = 1;
/// Bad usage: clap's own code for unknown flags and bad values.
#[allow(dead_code)]
pub const USAGE: u8 = 2;
/// The command could not do its work (bad input file, server unreachable, …).
pub const ERROR: u8 = 3;
