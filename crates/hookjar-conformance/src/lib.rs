//! `hookjar-conformance`: the suites hookjar's users run.
//!
//! # Layout
//! - [`check`] — the endpoint check: sends what Skilljar sends to an integrator's URL
//!   and judges each answer the way Skilljar will.
//! - [`suite`] — the dispatcher conformance suite: one case per clause, driving a
//!   dispatcher through its HTTP API and observing it through the mock receiver; one
//!   module per clause group (`suite/api.rs`, `delivery.rs`, `retries.rs`,
//!   `toolkit.rs`), the shared context, and [`suite::timing`] (gap checks in wall time
//!   that report a gap the time scale cannot resolve as inconclusive).
//! - [`simulate`] — the reference dispatcher against a scripted mock, in virtual time.
//! - [`report`] — case results; table, JSON and JUnit output.
//!
//! Requests are sent with the reference dispatcher's `deliver::Sender`, so `check`,
//! `send` and `replay` treat answers exactly as the dispatcher does.
//!
//! # Promises
//! Every case names the clause it checks and says what it expected and what it saw. A
//! run with no case, with any failed case, or interrupted, does not pass; an
//! inconclusive case is never reported as passed.

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
