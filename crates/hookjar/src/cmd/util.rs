//! Helpers shared by the commands.

use std::process::ExitCode;
use std::time::Duration;

use crate::exit;

/// Says plainly that a command is not there yet and exits non-zero.
pub fn not_implemented(command: &str, issue: u32) -> anyhow::Result<ExitCode> {
    eprintln!(
        "hookjar {command}: not implemented yet (tracked in issue #{issue}); nothing was run."
    );
    Ok(ExitCode::from(exit::NOT_IMPLEMENTED))
}

/// Parses a duration flag: `500ms`, `2s`, `10m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration; write e.g. 500ms, 2s, 10m or 1h"))?;
    let scale = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {s:?}; use ms, s, m or h (e.g. 2s)"
            ));
        }
    };
    Duration::try_from_secs_f64(value * scale)
        .map_err(|_| format!("{s:?} is not a duration; write e.g. 500ms, 2s, 10m or 1h"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("abc").is_err());
    }
}

/// `--format` of the commands that print a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table for people.
    Table,
    /// JSON for programs.
    Json,
}

/// Seconds as a JSON number: an integer when whole (`2`), else a float (`1.5`).
pub fn secs_json(d: Duration) -> serde_json::Value {
    if d.subsec_nanos() == 0 {
        serde_json::Value::from(d.as_secs())
    } else {
        serde_json::Value::from(d.as_secs_f64())
    }
}
