//! Helpers shared by the commands.

use std::time::Duration;

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
    Duration::try_from_secs_f64(value * scale).map_err(|_| {
        format!("{s:?} is too long a duration to use; write e.g. 500ms, 2s, 10m or 1h")
    })
}

/// Parses a timeout: a duration longer than zero (a zero timeout would fail every
/// request at random).
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err(format!(
            "{s:?} is not a usable timeout; give a duration longer than zero, e.g. 500ms or 10s"
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_target_urls_say_why() {
        for (url, why) in [
            (
                "http://127.0.0.1:99999/",
                "the port is not a number from 1 to 65535",
            ),
            ("127.0.0.1:18801/ok", "it has no scheme"),
            ("http://127.0.0.1:18801/ok ", "white space"),
            ("http://127.1/", "write it in full, 127.0.0.1"),
        ] {
            let err = parse_target_url(url).unwrap_err();
            assert!(err.contains(why), "{url}: {err}");
        }
        assert!(parse_target_url("http://127.0.0.1:18801/ok").is_ok());
    }

    #[test]
    fn server_urls_must_be_http_with_a_host() {
        assert_eq!(
            parse_server_url("http://127.0.0.1:8750/"),
            Ok("http://127.0.0.1:8750".to_owned())
        );
        assert!(
            parse_server_url("notaurl")
                .unwrap_err()
                .contains("\"notaurl\"")
        );
        assert!(
            parse_server_url("ftp://x")
                .unwrap_err()
                .contains("not http or https")
        );
    }

    #[test]
    fn timeouts_must_be_longer_than_zero() {
        assert!(
            parse_timeout("0s")
                .unwrap_err()
                .contains("longer than zero")
        );
        assert!(parse_timeout("0").is_err());
        assert_eq!(parse_timeout("1ms"), Ok(Duration::from_millis(1)));
    }

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

/// Parses `--basic-auth user:pass` (the password may contain ':'); the same parser as
/// the mock receiver's.
pub fn parse_basic_auth(s: &str) -> Result<(String, String), String> {
    hookjar_mock::config::parse_basic_auth(s).map_err(|e| e.0)
}

/// Parses a URL to send to: absolute http(s), as a webhook's `target_url` must be (S2).
pub fn parse_target_url(s: &str) -> Result<String, String> {
    hookjar_core::webhook::validate_target_url(s)
        .map(|()| s.to_owned())
        .map_err(|e| {
            let why = url_problem(s).map_or_else(String::new, |w| format!(": {w}"));
            format!(
                "{s:?} is not a URL Skilljar would accept ({}{why}); give an absolute http(s) URL such as http://127.0.0.1:8790/hook",
                e.join(" ")
            )
        })
}

/// Why Skilljar's URL validator (S6) would refuse `s`, in words, where that can be
/// told: the API itself answers only "Enter a valid URL.", as Skilljar's does.
fn url_problem(s: &str) -> Option<String> {
    if s.trim() != s || s.contains(char::is_whitespace) {
        return Some("it holds white space".to_owned());
    }
    if !s.contains("://") {
        return Some("it has no scheme; start it with http:// or https://".to_owned());
    }
    let url = match url::Url::parse(s) {
        Ok(u) => u,
        Err(url::ParseError::InvalidPort) => {
            return Some("the port is not a number from 1 to 65535".to_owned());
        }
        Err(e) => return Some(e.to_string()),
    };
    if !matches!(url.scheme(), "http" | "https") {
        return Some(format!(
            "the scheme is {:?}, not http or https",
            url.scheme()
        ));
    }
    // The WHATWG parser reads `127.1` as `127.0.0.1`; Django's validator does not.
    let written_host = s
        .split_once("://")
        .map(|(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or(""))
        .map(|authority| authority.rsplit('@').next().unwrap_or(""))
        .map(|host_port| {
            if host_port.starts_with('[') {
                host_port
            } else {
                host_port.split(':').next().unwrap_or("")
            }
        })
        .unwrap_or("");
    if let Some(url::Host::Ipv4(ip)) = url.host() {
        if written_host != ip.to_string() {
            return Some(format!(
                "the host {written_host:?} is a shortened IPv4 address; write it in full, {ip}"
            ));
        }
    }
    None
}

/// Parses a dispatcher's `--server URL`: an absolute http(s) URL with a host.
pub fn parse_server_url(s: &str) -> Result<String, String> {
    let bad = |why: &str| {
        format!(
            "{s:?} is not a dispatcher URL ({why}); give an absolute http(s) URL such as http://127.0.0.1:8750"
        )
    };
    let url = url::Url::parse(s).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(&format!(
            "the scheme is {:?}, not http or https",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("it has no host"));
    }
    Ok(s.trim_end_matches('/').to_owned())
}

/// Parses `--time-scale N` (X3): a positive number.
pub fn parse_time_scale(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 => Ok(n),
        _ => Err(format!(
            "{s:?} is not a time scale; give a positive number such as 1, 60 or 3600"
        )),
    }
}

/// Parses `-H 'name: value'` and checks it as the dispatcher would (S6).
pub fn parse_header(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} has no ':'; write a header as 'name: value'"))?;
    let (name, value) = (name.trim().to_owned(), value.trim().to_owned());
    hookjar_core::webhook::validate_header(&name, &value).map_err(|e| {
        // The API's words name the webhook's fields; here they are a flag.
        e.replace(
            "Use basic_auth_username and basic_auth_password for Basic auth.",
            "Use --basic-auth USER:PASS for Basic auth.",
        )
    })?;
    Ok((name, value))
}

/// A single-threaded tokio runtime for a command.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Whether to colour output on stdout: never when `NO_COLOR` is set (non-empty);
/// else on a terminal, or when `CLICOLOR_FORCE` is set (non-empty and not `0`).
pub fn color_stdout() -> bool {
    use std::io::IsTerminal as _;
    color_wanted(std::io::stdout().is_terminal())
}

fn color_wanted(terminal: bool) -> bool {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0");
    if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
        return false;
    }
    terminal || set("CLICOLOR_FORCE")
}

/// The colours hookjar uses, the same in every command: green for success, red for
/// failure, yellow for warnings (and the mock's violation lines).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paint {
    Good,
    Bad,
    Warn,
}

/// `text` in `paint` when `color` is on.
pub fn paint(text: &str, paint: Paint, color: bool) -> String {
    if !color {
        return text.to_owned();
    }
    let code = match paint {
        Paint::Good => "32",
        Paint::Bad => "31",
        Paint::Warn => "33",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// Whether to colour output on stderr (the rules of [`color_stdout`]).
pub fn color_stderr() -> bool {
    use std::io::IsTerminal as _;
    color_wanted(std::io::stderr().is_terminal())
}

/// The wall clock, for payload timestamps in commands that talk to real endpoints.
pub fn wall_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

/// A spinner on stderr while a suite runs; hidden when stderr is not a terminal or
/// `NO_COLOR`/`--quiet` asks for plain output.
pub struct SuiteProgress {
    bar: indicatif::ProgressBar,
}

impl SuiteProgress {
    pub fn new(quiet: bool, total: Option<u64>) -> Self {
        use std::io::IsTerminal as _;
        let visible = !quiet && std::io::stderr().is_terminal();
        let bar = if !visible {
            indicatif::ProgressBar::hidden()
        } else if let Some(n) = total {
            indicatif::ProgressBar::new(n)
        } else {
            indicatif::ProgressBar::new_spinner()
        };
        let template = if std::env::var_os("NO_COLOR").is_some() {
            "{pos}/{len} {msg}"
        } else {
            "{spinner:.cyan} {pos}/{len} {msg}"
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        SuiteProgress { bar }
    }
}

impl hookjar_conformance::check::Progress for SuiteProgress {
    fn start(&mut self, id: &str) {
        self.bar.set_message(id.to_owned());
        self.bar.tick();
    }
    fn done(&mut self, _result: &hookjar_conformance::CaseResult) {
        self.bar.inc(1);
    }
}

impl Drop for SuiteProgress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// Prints a report as asked, writes JUnit when asked, and returns the exit code.
pub fn finish_report(
    report: &hookjar_conformance::Report,
    format: Format,
    junit: Option<&std::path::Path>,
) -> anyhow::Result<std::process::ExitCode> {
    use anyhow::Context as _;
    match format {
        Format::Table => print!("{}", report.to_table(color_stdout(), true)),
        Format::Json => println!("{}", report.to_json()),
    }
    if let Some(path) = junit {
        std::fs::write(path, report.to_junit())
            .with_context(|| format!("cannot write the JUnit report to {}", path.display()))?;
    }
    Ok(if report.passed() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(crate::exit::FAILED)
    })
}
