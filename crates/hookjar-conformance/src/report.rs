//! Case results and the three ways a report is printed: a table, JSON, JUnit XML.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

/// How one case ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// What was seen is what the spec expects.
    Pass,
    /// It passed, but something is close to failing (e.g. slow answers).
    Warn,
    /// What was seen departs from the spec.
    Fail,
    /// Not run (not applicable to this configuration); `seen` says why.
    Skip,
    /// Run, and nothing seen departs from the spec, but the run could not observe
    /// what the case claims (a gap too short to measure at the dispatcher's time
    /// scale): never a pass. `seen` says what was not resolved and
    /// [`CaseResult::max_time_scale`] the largest scale that would resolve it.
    Inconclusive,
}

impl Status {
    /// `pass`, `warn`, `FAIL`, `skip`.
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
            Status::Inconclusive => "INCONCLUSIVE",
        }
    }
}

/// One named case of a suite.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseResult {
    /// Stable name, clause first: `S7.content-type`, `event.COURSE_ENROLLMENT`.
    pub id: String,
    /// The clause(s) it checks, e.g. `S7`.
    pub clause: String,
    /// How it ended.
    pub status: Status,
    /// What the spec expects.
    pub expected: String,
    /// What was seen (or why it was skipped).
    pub seen: String,
    /// How long it took (in the time the suite ran in).
    #[serde(serialize_with = "millis")]
    pub duration: Duration,
    /// For an inconclusive timing case: the largest `--time-scale` at which the run
    /// would resolve what this one could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_time_scale: Option<f64>,
}

impl CaseResult {
    /// A result with no duration yet.
    pub fn new(
        id: impl Into<String>,
        clause: impl Into<String>,
        status: Status,
        expected: impl Into<String>,
        seen: impl Into<String>,
    ) -> Self {
        CaseResult {
            id: id.into(),
            clause: clause.into(),
            status,
            expected: expected.into(),
            seen: seen.into(),
            duration: Duration::ZERO,
            max_time_scale: None,
        }
    }

    /// An inconclusive result: nothing failed, but `max_time_scale` (or below) is
    /// needed to resolve what the case claims.
    pub fn inconclusive(
        id: impl Into<String>,
        clause: impl Into<String>,
        expected: impl Into<String>,
        seen: impl Into<String>,
        max_time_scale: Option<f64>,
    ) -> Self {
        let mut r = CaseResult::new(id, clause, Status::Inconclusive, expected, seen);
        r.max_time_scale = max_time_scale;
        r
    }

    /// Pass when `ok`, fail otherwise.
    pub fn check(
        id: impl Into<String>,
        clause: impl Into<String>,
        ok: bool,
        expected: impl Into<String>,
        seen: impl Into<String>,
    ) -> Self {
        let status = if ok { Status::Pass } else { Status::Fail };
        CaseResult::new(id, clause, status, expected, seen)
    }
}

impl CaseResult {
    /// The case's line(s) in the table (ids padded to `id_w`): status, id, what was
    /// seen; a failed, warned or inconclusive case adds what was expected.
    pub fn to_line(&self, color: bool, show_durations: bool, id_w: usize) -> String {
        let id_w = id_w.max(4);
        let mut out = String::new();
        let label = self.status.label();
        let label = if color {
            let code = match self.status {
                Status::Pass => "32",
                Status::Warn => "33",
                Status::Fail => "31;1",
                Status::Skip => "2",
                Status::Inconclusive => "35;1",
            };
            format!("\x1b[{code}m{label:<4}\x1b[0m")
        } else {
            format!("{label:<4}")
        };
        let dur = if show_durations {
            format!(" {:>7}", format_ms(self.duration))
        } else {
            String::new()
        };
        // A case that needs attention keeps its whole text: its advice is at the end.
        let attention = matches!(
            self.status,
            Status::Fail | Status::Warn | Status::Inconclusive
        );
        let seen = if attention {
            self.seen.clone()
        } else {
            shorten(&self.seen, 200)
        };
        let _ = writeln!(out, "{label} {:<id_w$}{dur}  {seen}", self.id);
        if attention {
            let _ = writeln!(out, "     {:<id_w$}  expected: {}", "", self.expected);
        }
        out
    }
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

/// Every case of one suite run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// `dispatcher-conformance` or `endpoint-check`.
    pub suite: String,
    /// What was tested: a URL or `self-hosted reference dispatcher`.
    pub target: String,
    /// The cases in the order they ran.
    pub cases: Vec<CaseResult>,
    /// Wall time of the whole run.
    #[serde(serialize_with = "millis", rename = "duration_ms")]
    pub duration: Duration,
    /// The run was stopped (SIGINT/SIGTERM) before every case ran: `cases` holds what
    /// ran, and the run does not pass.
    pub interrupted: bool,
    /// INCONCLUSIVE cases fail the run (`--strict`): [`Report::passed`] is false
    /// with any, and JUnit lists them as failures.
    pub strict: bool,
}

/// Counts by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub passed: usize,
    pub warned: usize,
    pub failed: usize,
    pub skipped: usize,
    pub inconclusive: usize,
}

impl Report {
    /// An empty report.
    pub fn new(suite: impl Into<String>, target: impl Into<String>) -> Self {
        Report {
            suite: suite.into(),
            target: target.into(),
            cases: Vec::new(),
            duration: Duration::ZERO,
            interrupted: false,
            strict: false,
        }
    }

    /// Counts by status.
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for c in &self.cases {
            match c.status {
                Status::Pass => t.passed += 1,
                Status::Warn => t.warned += 1,
                Status::Fail => t.failed += 1,
                Status::Skip => t.skipped += 1,
                Status::Inconclusive => t.inconclusive += 1,
            }
        }
        t
    }

    /// True when no case failed (warnings, skips and — unless [`Report::strict`] —
    /// inconclusive cases do not fail a run; the table and the reports list the
    /// inconclusive ones).
    pub fn passed(&self) -> bool {
        let t = self.totals();
        t.failed == 0
            && (!self.strict || t.inconclusive == 0)
            && !self.cases.is_empty()
            && !self.interrupted
    }

    /// The table for people. `color` adds ANSI colours to the status column.
    pub fn to_table(&self, color: bool, show_durations: bool) -> String {
        let id_w = self.cases.iter().map(|c| c.id.len()).max().unwrap_or(4);
        let mut out = String::new();
        let _ = writeln!(out, "{} — {}", self.suite, self.target);
        for c in &self.cases {
            out.push_str(&c.to_line(color, show_durations, id_w));
        }
        out.push_str(&self.summary());
        out
    }

    /// The closing lines of the table: an interruption note, then the totals.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let t = self.totals();
        if self.interrupted {
            let _ = writeln!(
                out,
                "interrupted: the run was stopped before every case ran"
            );
        }
        let _ = writeln!(
            out,
            "{} passed, {} failed, {} warned, {} skipped{}",
            t.passed,
            t.failed,
            t.warned,
            t.skipped,
            if t.inconclusive > 0 {
                format!(
                    ", {} INCONCLUSIVE (not passed: the time scale could not resolve them)",
                    t.inconclusive
                )
            } else {
                String::new()
            }
        );
        out
    }

    /// JSON for programs.
    pub fn to_json(&self) -> String {
        let mut v = serde_json::to_value(self).expect("a report serialises");
        v["totals"] = serde_json::to_value(self.totals()).expect("totals serialise");
        v["passed"] = serde_json::Value::Bool(self.passed());
        serde_json::to_string_pretty(&v).expect("JSON")
    }

    /// JUnit XML, one `<testcase>` per case (warnings pass, with their note in
    /// `system-out`).
    pub fn to_junit(&self) -> String {
        use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus, TestSuite};
        let mut suite = TestSuite::new(self.suite.as_str());
        suite.set_time(self.duration);
        suite.add_property(("target", self.target.as_str()));
        if self.interrupted {
            suite.add_property(("interrupted", "true"));
        }
        for c in &self.cases {
            let status = match c.status {
                Status::Pass | Status::Warn => TestCaseStatus::success(),
                Status::Skip => {
                    let mut s = TestCaseStatus::skipped();
                    s.set_message(c.seen.as_str());
                    s
                }
                Status::Inconclusive => {
                    let mut s = if self.strict {
                        TestCaseStatus::non_success(NonSuccessKind::Failure)
                    } else {
                        TestCaseStatus::skipped()
                    };
                    s.set_message(format!("inconclusive: {}", c.seen));
                    s.set_type("inconclusive");
                    s
                }
                Status::Fail => {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    s.set_message(format!("expected: {}; seen: {}", c.expected, c.seen));
                    s.set_type(c.clause.as_str());
                    s
                }
            };
            let mut tc = TestCase::new(c.id.as_str(), status);
            tc.set_classname(format!("{}.{}", self.suite, c.clause));
            tc.set_time(c.duration);
            if c.status == Status::Warn {
                tc.set_system_out(format!("warning: {}", c.seen));
            }
            suite.add_test_case(tc);
        }
        let mut report = quick_junit::Report::new("hookjar");
        report.set_time(self.duration);
        report.add_test_suite(suite);
        report.to_string().expect("JUnit serialises")
    }
}

/// Cuts long text for the table (JSON and JUnit keep it whole).
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(max - 1).collect();
        format!("{cut}…")
    }
}

fn format_ms(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 10_000 {
        format!("{ms}ms")
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        let mut r = Report::new("endpoint-check", "http://127.0.0.1:1/hook");
        r.cases
            .push(CaseResult::check("ping", "S13", true, "2xx", "200 in 3ms"));
        r.cases.push(CaseResult::check(
            "auth.missing",
            "S8",
            false,
            "a 4xx (401) for a request without Basic auth",
            "200: your endpoint accepted it",
        ));
        r
    }

    #[test]
    fn totals_and_verdict() {
        let r = sample();
        assert_eq!(r.totals().passed, 1);
        assert_eq!(r.totals().failed, 1);
        assert!(!r.passed());
        assert!(!Report::new("x", "y").passed(), "an empty run is no pass");
    }

    #[test]
    fn table_lists_expectations_for_failures() {
        let t = sample().to_table(false, false);
        assert!(
            t.contains("FAIL auth.missing  200: your endpoint accepted it"),
            "{t}"
        );
        assert!(t.contains("expected: a 4xx (401)"), "{t}");
        assert!(
            t.ends_with("1 passed, 1 failed, 0 warned, 0 skipped\n"),
            "{t}"
        );
    }

    /// `--strict`: an inconclusive case fails the run, in JUnit too; without it the
    /// case is a skip.
    #[test]
    fn strict_makes_inconclusive_cases_failures() {
        let mut r = Report::new("dispatcher-conformance", "http://127.0.0.1:1");
        r.cases
            .push(CaseResult::check("S1.list", "S1", true, "200", "200"));
        r.cases.push(CaseResult::inconclusive(
            "S14.backoff",
            "S14",
            "gaps of 2, 4, 8 s",
            "gaps of 56 µs: not resolved",
            Some(9.0),
        ));
        assert!(r.passed());
        let x = r.to_junit();
        assert!(x.contains("<skipped") && !x.contains("<failure"), "{x}");
        r.strict = true;
        assert!(!r.passed());
        let x = r.to_junit();
        assert!(
            x.contains("<failure") && x.contains("failures=\"1\""),
            "{x}"
        );
        assert!(x.contains("type=\"inconclusive\""), "{x}");
        assert!(r.to_json().contains("\"passed\": false"));
    }

    #[test]
    fn junit_has_one_testcase_per_case_and_the_failure() {
        let x = sample().to_junit();
        assert_eq!(x.matches("<testcase ").count(), 2, "{x}");
        assert!(x.contains("<failure"), "{x}");
        assert!(x.contains("tests=\"2\""), "{x}");
        assert!(x.contains("failures=\"1\""), "{x}");
    }
}
