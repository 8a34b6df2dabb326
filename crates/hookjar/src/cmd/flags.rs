//! Flag groups that several commands share, flattened into their `Args`, so each
//! flag is spelled, explained and parsed in one place.

use std::path::PathBuf;
use std::time::Duration;

use hookjar_core::RetryPolicy;

use super::util::{Format, parse_basic_auth, parse_duration, parse_header, parse_timeout};

/// The retry policy of S14–S15 (`schedule`, `simulate`, `serve`).
#[derive(Debug, Clone, clap::Args)]
pub struct PolicyFlags {
    /// Wait before the first retry (e.g. 2s, 500ms).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub base_delay: Duration,
    /// Longest wait between two attempts (e.g. 1h, 3600s).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub max_delay: Duration,
    /// Retries after the first attempt.
    #[arg(long, default_value_t = 60)]
    pub retry_limit: u32,
}

impl PolicyFlags {
    /// The policy, checked, with Skilljar's doubling (or `factor`).
    pub fn policy(&self, factor: u32) -> anyhow::Result<RetryPolicy> {
        RetryPolicy::new(self.base_delay, factor, self.max_delay, self.retry_limit)
            .map_err(|e| crate::exit::bad_input(format!("invalid retry policy: {e}")))
    }
}

/// How a request is sent to an endpoint, as the webhook is configured (`check`,
/// `send`, `replay`).
#[derive(Debug, Clone, clap::Args)]
pub struct SendFlags {
    /// Basic auth, as user:pass (S8): what the webhook's basic_auth_username and
    /// basic_auth_password would be.
    #[arg(long, value_name = "USER:PASS", value_parser = parse_basic_auth)]
    pub basic_auth: Option<(String, String)>,
    /// An additional header, as 'name: value' (repeatable, S9).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// How long to wait for an answer (Skilljar's dispatcher gives up after 10 s).
    #[arg(long, default_value = "10s", value_parser = parse_timeout)]
    pub timeout: Duration,
}

impl SendFlags {
    /// The Basic auth halves, empty when not given.
    pub fn auth(&self) -> (String, String) {
        self.basic_auth.clone().unwrap_or_default()
    }

    /// The additional headers as the webhook would hold them. A name given twice,
    /// in any case, is refused: header names are case-insensitive, so `X-A` and
    /// `x-a` are one header, of which the receiver would see only the last value.
    pub fn header_map(&self) -> anyhow::Result<hookjar_core::webhook::Headers> {
        for (i, (name, _)) in self.headers.iter().enumerate() {
            if let Some((other, _)) = self.headers[..i]
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                return Err(crate::exit::bad_input(format!(
                    "-H {name} is given twice ({other:?} and {name:?}; header names are case-insensitive, so the receiver would get one of them); give each header once"
                )));
            }
        }
        Ok(self.headers.iter().cloned().collect())
    }
}

/// How a suite's report is given (`conformance`, `check`).
#[derive(Debug, Clone, clap::Args)]
pub struct ReportFlags {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Also write a JUnit XML report to this file (for CI).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// What a server holds its clients to (`serve`, `mock`): see hookjar-net.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerFlags {
    /// A client must send a request's headers within this; an idle keep-alive
    /// connection is closed after it too, and a client that pauses this long in the
    /// middle of a body, or takes six times this for the whole body, gets 408.
    #[arg(long, default_value = "10s", value_parser = parse_timeout, value_name = "DURATION")]
    pub header_timeout: Duration,
    /// Connections open at once at most; at the limit new ones wait until one closes.
    #[arg(long, default_value_t = hookjar_net::DEFAULT_MAX_CONNECTIONS, value_parser = parse_max_connections, value_name = "N")]
    pub max_connections: usize,
}

impl ServerFlags {
    /// The limits the server runs with.
    pub fn limits(&self) -> hookjar_net::Limits {
        hookjar_net::Limits {
            header_timeout: self.header_timeout,
            max_connections: self.max_connections,
        }
    }
}

/// `--max-connections`: a whole number of at least 1.
fn parse_max_connections(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "{s:?} is not a connection limit; give a whole number of at least 1 (default {})",
            hookjar_net::DEFAULT_MAX_CONNECTIONS
        )),
    }
}
