//! Every error the crate returns, each saying what was wrong and what to do.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::record::RecordedRequest;

/// A setting written in a form the receiver does not read (a flag value, a config
/// value). The message says what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSetting(pub String);

/// A config file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {source}; check the path given to --config", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key, or a value that does not parse.
    #[error("{origin} line {line}: {message}")]
    Parse {
        /// The file name (or `config` for text).
        origin: String,
        /// 1-based line of the bad value.
        line: usize,
        /// What is wrong and what is accepted.
        message: String,
    },
}

/// The receiver could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The address could not be bound.
    #[error(
        "cannot listen on {addr}: {source}; choose another address (port 0 picks a free one) or stop what is using it"
    )]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The listener has no local address (should not happen with TCP).
    #[error("cannot read the listener's address: {0}")]
    LocalAddr(#[source] std::io::Error),
    /// The journal file could not be opened for appending.
    #[error("cannot open journal file {} for appending: {source}; check that its folder exists and is writable", path.display())]
    Journal {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Fewer requests arrived than were waited for.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", wait_message(*.expected, *.timeout, .received))]
pub struct WaitError {
    /// How many requests were waited for.
    pub expected: usize,
    /// How long.
    pub timeout: Duration,
    /// What had arrived when the time was up.
    pub received: Vec<RecordedRequest>,
}

fn wait_message(expected: usize, timeout: Duration, received: &[RecordedRequest]) -> String {
    let mut out = format!(
        "waited {timeout:?} for {expected} request(s) but {} arrived; check the sender's URL and that it sends at all",
        received.len()
    );
    for r in received {
        let _ = write!(out, "\n  {}", r.summary());
    }
    out
}
