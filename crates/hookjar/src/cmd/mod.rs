//! One module per command.

pub mod check;
pub mod conformance;
pub mod emit;
pub mod fixtures;
pub mod flags;
pub mod mock;
pub mod replay;
pub mod schedule;
pub mod send;
pub mod serve;
pub mod simulate;
pub mod util;
