//! `hookjar-conformance`: the suites hookjar's users run.
//!
//! # Layout
//! - [`check`] — the endpoint check: sends what Skilljar sends to an integrator's URL
//!   and judges each answer the way Skilljar will.
//! - [`suite`] — the dispatcher conformance suite: one case per clause, driving a
//!   dispatcher through its HTTP API and observing it through the mock receiver.
//! - [`simulate`] — the reference dispatcher against a scripted mock, in virtual time.
//! - [`report`] — case results; table, JSON and JUnit output.
//!
//! Requests are sent with the reference dispatcher's `deliver::Sender`, so `check`,
//! `send` and `replay` treat answers exactly as the dispatcher does.
//!
//! # Promises
//! Every case names the clause it checks and says what it expected and what it saw. A
//! run with no case, or with any failed case, does not pass.

pub mod check;
pub mod report;
pub mod simulate;
pub mod suite;

pub use report::{CaseResult, Report, Status};

/// A single-threaded tokio runtime whose clock is paused and auto-advances: the
/// self-hosted suite and `simulate` run on it, so back-off waits cost no real time.
pub fn virtual_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
}
