//! The mock receiver's script language (issue #3): how a mock answers each attempt.
//!
//! A script is a comma-separated list of steps. Each attempt the receiver gets consumes
//! the next step; the last step repeats forever.
//!
//! ```text
//! script := step ( "," step )*
//! step   := action ( "@" delay )? ( "*" count )?      // "@" and "*" in either order
//! action := STATUS                                    // 200 … 599: answer that status
//!         | STATUS "+retry-after=" SECONDS            // the same, with Retry-After: SECONDS
//!         | "reset"                                   // close without answering (TCP RST)
//!         | "hang"                                    // never answer
//!         | "garbage"                                 // answer bytes that are not HTTP
//!         | "redirect" ( "=" TARGET )?                // 307 to the same URL, or to TARGET
//!         | REDIRECT_STATUS "=" TARGET                // 301, 302, 303, 307 or 308 to TARGET
//! delay  := DIGITS ( "ms" | "s" | "m" | "h" )         // 1500ms, 2s, 1m, 1h (at most 24h)
//! count  := DIGITS                                    // 1 … 1000000
//! ```
//!
//! Spaces around steps are ignored; keywords are case-insensitive. `TARGET` is a path
//! (`/other`), a relative reference that starts with `./` or `../` (`./next`, which a
//! client resolves against the URL it asked, RFC 3986) or an absolute
//! `http://`/`https://` URL, without `,`, `@`, `*` or spaces. `SECONDS` is 0 to
//! 4294967295: `503+retry-after=3600` answers 503 with `Retry-After: 3600`, which a
//! Skilljar-style sender ignores (S14's back-off and S16's 4xx rule decide).
//! `303=/other` answers that redirect status with `Location: /other` (a client turns
//! the POST of a 301, 302 or 303 into a GET, S18); `307=/other` is `redirect=/other`. A
//! 3xx status alone (`302`) answers without a `Location`.
//!
//! [`Script`]'s `Display` prints the canonical text (`503*2,200@1500ms,reset`), and
//! parsing that text gives the same script back. Parse errors point at the bad token:
//!
//! ```
//! use hookjar_core::script::Script;
//!
//! let script: Script = "503*2, 200@1500ms".parse().unwrap();
//! assert_eq!(script.to_string(), "503*2,200@1500ms");
//! assert_eq!(script.step_for(0).to_string(), "503*2");
//! assert_eq!(script.step_for(2).to_string(), "200@1500ms");
//! assert_eq!(script.step_for(99).to_string(), "200@1500ms"); // the last step repeats
//!
//! let err = "503*x,200".parse::<Script>().unwrap_err();
//! assert_eq!(err.column, 5);
//! assert_eq!(err.token, "x");
//! assert!(err.to_string().contains("expected a repeat count"), "{err}");
//! ```

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest delay a step accepts; use `hang` to never answer.
pub const MAX_DELAY: Duration = Duration::from_secs(24 * 3600);
/// The largest repeat count a step accepts.
pub const MAX_REPEAT: u32 = 1_000_000;

/// What a step does with the attempt it answers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    /// Answer with this HTTP status (200…599) and a short JSON note.
    Status(u16),
    /// Answer as [`Action::Status`] does, with a `Retry-After: seconds` header.
    RetryAfter {
        /// 200…599.
        code: u16,
        /// The header's delay-seconds.
        seconds: u32,
    },
    /// Close the connection without an answer (a TCP reset where possible).
    Reset,
    /// Never answer, until the client gives up.
    Hang,
    /// Answer bytes that are not HTTP.
    Garbage,
    /// Answer `307 Temporary Redirect`: to the same URL (`None`, a loop) or to the
    /// given path or URL.
    Redirect(Option<String>),
    /// Answer another redirect status ([`REDIRECT_STATUSES`] but 307, which is
    /// [`Action::Redirect`]) with `Location: target`.
    RedirectTo {
        /// 301, 302, 303 or 308.
        code: u16,
        /// A path or an http(s) URL.
        target: String,
    },
}

/// The statuses a step can answer with a `Location` (`303=/other`).
pub const REDIRECT_STATUSES: [u16; 5] = [301, 302, 303, 307, 308];

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Status(code) => write!(f, "{code}"),
            Action::RetryAfter { code, seconds } => write!(f, "{code}+retry-after={seconds}"),
            Action::Reset => f.write_str("reset"),
            Action::Hang => f.write_str("hang"),
            Action::Garbage => f.write_str("garbage"),
            Action::Redirect(None) => f.write_str("redirect"),
            Action::Redirect(Some(target)) => write!(f, "redirect={target}"),
            Action::RedirectTo { code, target } => write!(f, "{code}={target}"),
        }
    }
}

/// One step: an action, an optional delay before it, and how many attempts it answers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Step {
    /// What to do.
    pub action: Action,
    /// How long to wait before doing it (zero: at once). Whole milliseconds.
    pub delay: Duration,
    /// How many consecutive attempts this step answers (at least 1).
    pub repeat: u32,
}

impl Step {
    /// A step that answers once, at once.
    pub fn new(action: Action) -> Self {
        Step {
            action,
            delay: Duration::ZERO,
            repeat: 1,
        }
    }

    /// The same step answering a single attempt: what a journal records as "the step
    /// that answered" (`503` for an attempt answered by `503*3`).
    pub fn single(&self) -> Step {
        Step {
            repeat: 1,
            ..self.clone()
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.action)?;
        if !self.delay.is_zero() {
            write!(f, "@{}", DisplayDelay(self.delay))?;
        }
        if self.repeat != 1 {
            write!(f, "*{}", self.repeat)?;
        }
        Ok(())
    }
}

/// Prints a delay the way the parser reads it: `2s` when whole seconds, else `1500ms`.
struct DisplayDelay(Duration);

impl fmt::Display for DisplayDelay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms % 1000 == 0 {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

/// A parsed script: one or more steps.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Script {
    steps: Vec<Step>,
}

impl Script {
    /// A script of the given steps; `None` when `steps` is empty or a step is out of
    /// the parser's bounds (repeat 0 or above [`MAX_REPEAT`], a delay above
    /// [`MAX_DELAY`] or not whole milliseconds, a status outside 200…599, a redirect
    /// target the parser would not read back, a [`Action::RedirectTo`] of 307 or of a
    /// status that is not a redirect).
    pub fn new(steps: Vec<Step>) -> Option<Self> {
        let ok = !steps.is_empty()
            && steps.iter().all(|s| {
                (1..=MAX_REPEAT).contains(&s.repeat)
                    && s.delay <= MAX_DELAY
                    && s.delay.subsec_nanos() % 1_000_000 == 0
                    && match &s.action {
                        Action::Status(code) | Action::RetryAfter { code, .. } => {
                            (200..=599).contains(code)
                        }
                        Action::Redirect(Some(t)) => valid_target(t),
                        Action::RedirectTo { code, target } => {
                            *code != 307 && REDIRECT_STATUSES.contains(code) && valid_target(target)
                        }
                        _ => true,
                    }
            });
        ok.then_some(Script { steps })
    }

    /// A script with a single step that answers `code` at once.
    pub fn status(code: u16) -> Self {
        Script {
            steps: vec![Step::new(Action::Status(code))],
        }
    }

    /// Parses script text (see the module docs for the grammar).
    pub fn parse(text: &str) -> Result<Self, ScriptError> {
        Parser { text }.script()
    }

    /// The steps, in order.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The step that answers attempt `position` (0-based) of a sequence: repeats are
    /// expanded and the last step answers every attempt past the end.
    pub fn step_for(&self, position: u64) -> &Step {
        let mut left = position;
        for step in &self.steps {
            if left < u64::from(step.repeat) {
                return step;
            }
            left -= u64::from(step.repeat);
        }
        self.steps.last().expect("a script has at least one step")
    }
}

impl Default for Script {
    /// `200`: accept everything.
    fn default() -> Self {
        Script::status(200)
    }
}

impl fmt::Display for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.steps.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{step}")?;
        }
        Ok(())
    }
}

impl FromStr for Script {
    type Err = ScriptError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Script::parse(s)
    }
}

impl Serialize for Script {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Script {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Script::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Script text that does not parse: where, what was found, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid script {script:?} at column {column}: found {}, expected {expected}", found(.token))]
pub struct ScriptError {
    /// The whole script text.
    pub script: String,
    /// Byte offset of the bad token in `script`.
    pub offset: usize,
    /// 1-based column (in characters) of the bad token.
    pub column: usize,
    /// The bad token (empty when something is missing).
    pub token: String,
    /// What would have been accepted there.
    pub expected: String,
}

fn found(token: &str) -> String {
    if token.is_empty() {
        "nothing".to_owned()
    } else {
        format!("{token:?}")
    }
}

impl ScriptError {
    /// The script with a caret under the bad token, for terminals:
    ///
    /// ```text
    ///   503*x,200
    ///       ^
    /// ```
    pub fn snippet(&self) -> String {
        let width = self.token.chars().count().max(1);
        format!(
            "  {}\n  {}{}",
            self.script,
            " ".repeat(self.column.saturating_sub(1)),
            "^".repeat(width)
        )
    }
}

const EXPECTED_STEP: &str = "a step: a status 200-599 (e.g. 503, or 503+retry-after=3600), reset, hang, garbage, redirect, redirect=/path or a redirect status with a target (303=/path)";
const EXPECTED_REPEAT: &str = "a repeat count from 1 to 1000000 after '*' (as in 503*3)";
const EXPECTED_DELAY: &str =
    "a delay of whole ms, s, m or h, at most 24h, after '@' (as in 200@1500ms or 503@2s)";
const EXPECTED_TARGET: &str = "a redirect target: a path like /other, a relative ./next or ../next, or an http(s):// URL, without spaces, ',', '@' or '*'";
const EXPECTED_RETRY_AFTER: &str = "a Retry-After of whole seconds, 0 to 4294967295, after '+retry-after=' (as in 503+retry-after=3600)";
const EXPECTED_STATUS: &str = "an HTTP status from 200 to 599 (1xx cannot be a final answer)";

struct Parser<'a> {
    text: &'a str,
}

impl Parser<'_> {
    fn error(&self, offset: usize, token: &str, expected: &str) -> ScriptError {
        ScriptError {
            script: self.text.to_owned(),
            offset,
            column: self.text[..offset].chars().count() + 1,
            token: token.to_owned(),
            expected: expected.to_owned(),
        }
    }

    fn script(&self) -> Result<Script, ScriptError> {
        let mut steps = Vec::new();
        let mut start = 0;
        loop {
            let end = self.text[start..]
                .find(',')
                .map_or(self.text.len(), |i| start + i);
            steps.push(self.step(start, end)?);
            if end == self.text.len() {
                break;
            }
            start = end + 1;
        }
        Ok(Script { steps })
    }

    /// Parses `text[start..end]`, one step, spaces around it allowed.
    fn step(&self, start: usize, end: usize) -> Result<Step, ScriptError> {
        let (start, end) = trim(self.text, start, end);
        if start == end {
            return Err(self.error(start, "", EXPECTED_STEP));
        }
        let seg = &self.text[start..end];
        // Split the segment into the action and its '@'/'*' suffixes.
        let mut marks: Vec<usize> = seg
            .char_indices()
            .filter(|(_, c)| *c == '@' || *c == '*')
            .map(|(i, _)| start + i)
            .collect();
        marks.push(end);
        let action_end = marks[0];
        let action = self.action(start, action_end)?;
        let mut step = Step::new(action);
        let (mut seen_delay, mut seen_repeat) = (false, false);
        for pair in marks.windows(2) {
            let (mark, next) = (pair[0], pair[1]);
            let (vs, ve) = trim(self.text, mark + 1, next);
            let value = &self.text[vs..ve];
            if self.text.as_bytes()[mark] == b'@' {
                if seen_delay {
                    return Err(self.error(mark, "@", "at most one delay per step"));
                }
                seen_delay = true;
                step.delay =
                    parse_delay(value).ok_or_else(|| self.error(vs, value, EXPECTED_DELAY))?;
            } else {
                if seen_repeat {
                    return Err(self.error(mark, "*", "at most one repeat count per step"));
                }
                seen_repeat = true;
                step.repeat = value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| {
                        value.bytes().all(|b| b.is_ascii_digit()) && (1..=MAX_REPEAT).contains(n)
                    })
                    .ok_or_else(|| self.error(vs, value, EXPECTED_REPEAT))?;
            }
        }
        Ok(step)
    }

    fn action(&self, start: usize, end: usize) -> Result<Action, ScriptError> {
        let (start, end) = trim(self.text, start, end);
        let token = &self.text[start..end];
        if let Some((digits, rest)) = token.split_once('+') {
            return self.retry_after(start, digits, rest);
        }
        let status_target = token
            .split_once('=')
            .filter(|(code, _)| !code.is_empty() && code.bytes().all(|b| b.is_ascii_digit()));
        if let Some((digits, target)) = status_target {
            let Some(code) = digits
                .parse::<u16>()
                .ok()
                .filter(|c| REDIRECT_STATUSES.contains(c))
            else {
                return Err(self.error(
                    start,
                    digits,
                    "a redirect status (301, 302, 303, 307 or 308) before '=TARGET'",
                ));
            };
            if !valid_target(target) {
                return Err(self.error(start + digits.len() + 1, target, EXPECTED_TARGET));
            }
            return Ok(if code == 307 {
                Action::Redirect(Some(target.to_owned()))
            } else {
                Action::RedirectTo {
                    code,
                    target: target.to_owned(),
                }
            });
        }
        if !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()) {
            return match token.parse::<u16>() {
                Ok(code) if token.len() == 3 && (200..=599).contains(&code) => {
                    Ok(Action::Status(code))
                }
                _ => Err(self.error(start, token, EXPECTED_STATUS)),
            };
        }
        let (word, target) = match token.split_once('=') {
            Some((w, t)) => (w, Some(t)),
            None => (token, None),
        };
        let action = match (word.to_ascii_lowercase().as_str(), target) {
            ("reset", None) => Action::Reset,
            ("hang", None) => Action::Hang,
            ("garbage", None) => Action::Garbage,
            ("redirect", None) => Action::Redirect(None),
            ("redirect", Some(t)) => {
                if !valid_target(t) {
                    let at = start + word.len() + 1;
                    return Err(self.error(at, t, EXPECTED_TARGET));
                }
                Action::Redirect(Some(t.to_owned()))
            }
            ("reset" | "hang" | "garbage", Some(_)) => {
                return Err(self.error(
                    start,
                    token,
                    "no '=' after reset, hang or garbage (only redirect=/path takes a target)",
                ));
            }
            _ => return Err(self.error(start, token, EXPECTED_STEP)),
        };
        Ok(action)
    }
}

impl Parser<'_> {
    /// `STATUS+retry-after=SECONDS`, split at its `+` into `digits` and `rest`.
    fn retry_after(&self, start: usize, digits: &str, rest: &str) -> Result<Action, ScriptError> {
        let code = digits
            .parse::<u16>()
            .ok()
            .filter(|_| digits.len() == 3 && digits.bytes().all(|b| b.is_ascii_digit()))
            .filter(|c| (200..=599).contains(c))
            .ok_or_else(|| self.error(start, digits, EXPECTED_STATUS))?;
        const KEY: &str = "retry-after=";
        let at = start + digits.len() + 1;
        let value = match rest.get(..KEY.len()) {
            Some(k) if k.eq_ignore_ascii_case(KEY) => &rest[KEY.len()..],
            _ => {
                return Err(self.error(
                    at,
                    rest,
                    "retry-after=SECONDS after a status and '+' (as in 503+retry-after=3600)",
                ));
            }
        };
        let seconds = value
            .parse::<u32>()
            .ok()
            .filter(|_| !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| self.error(at + KEY.len(), value, EXPECTED_RETRY_AFTER))?;
        Ok(Action::RetryAfter { code, seconds })
    }
}

/// Narrows `text[start..end]` to exclude surrounding whitespace.
fn trim(text: &str, start: usize, end: usize) -> (usize, usize) {
    let seg = &text[start..end];
    let lead = seg.len() - seg.trim_start().len();
    let trail = seg.len() - seg.trim_end().len();
    if lead == seg.len() {
        return (start + lead, start + lead);
    }
    (start + lead, end - trail)
}

fn parse_delay(value: &str) -> Option<Duration> {
    let digits = value.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 12 {
        return None;
    }
    let n: u64 = value[..digits].parse().ok()?;
    let ms = match &value[digits..] {
        "ms" => n,
        "s" => n.checked_mul(1000)?,
        "m" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        _ => return None,
    };
    let d = Duration::from_millis(ms);
    (d <= MAX_DELAY).then_some(d)
}

fn valid_target(t: &str) -> bool {
    let shape = t.starts_with('/')
        || t.starts_with("./")
        || t.starts_with("../")
        || t.strip_prefix("http://")
            .is_some_and(|rest| !rest.is_empty())
        || t.strip_prefix("https://")
            .is_some_and(|rest| !rest.is_empty());
    shape
        && t.bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b',' | b'@' | b'*'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> ScriptError {
        Script::parse(text).unwrap_err()
    }

    #[test]
    fn redirect_statuses_take_a_target() {
        let s = Script::parse("303=/other,301=http://x.test/a,302=/b,308=/c,307=/d,302").unwrap();
        assert_eq!(
            s.to_string(),
            "303=/other,301=http://x.test/a,302=/b,308=/c,redirect=/d,302"
        );
        assert_eq!(
            s.steps()[0].action,
            Action::RedirectTo {
                code: 303,
                target: "/other".into()
            }
        );
        // 307 with a target is `redirect=`; a 3xx alone answers without a Location.
        assert_eq!(s.steps()[4].action, Action::Redirect(Some("/d".into())));
        assert_eq!(s.steps()[5].action, Action::Status(302));
        let e = err("200,304=/x");
        assert_eq!((e.column, e.token.as_str()), (5, "304"));
        assert!(e.expected.contains("303"), "{e}");
        let e = err("303=x y");
        assert_eq!((e.column, e.token.as_str()), (5, "x y"));
        assert!(e.expected.contains("redirect target"), "{e}");
        let bad = |code, target: &str| {
            Script::new(vec![Step::new(Action::RedirectTo {
                code,
                target: target.into(),
            })])
        };
        assert!(bad(307, "/x").is_none(), "307 is Action::Redirect");
        assert!(bad(304, "/x").is_none());
        assert!(bad(303, "x").is_none());
        assert!(bad(303, "/x").is_some());
    }

    #[test]
    fn retry_after_and_relative_targets() {
        let s = Script::parse("503+retry-after=3600, 429+Retry-After=1*2,200").unwrap();
        assert_eq!(
            s.to_string(),
            "503+retry-after=3600,429+retry-after=1*2,200"
        );
        assert_eq!(
            s.steps()[0].action,
            Action::RetryAfter {
                code: 503,
                seconds: 3600
            }
        );
        assert_eq!(s.steps()[1].repeat, 2);
        assert_eq!(
            Script::parse("503+retry-after=0@2s").unwrap().to_string(),
            "503+retry-after=0@2s"
        );
        let e = err("200,99+retry-after=1");
        assert_eq!((e.column, e.token.as_str()), (5, "99"));
        let e = err("503+retry=1");
        assert_eq!((e.column, e.token.as_str()), (5, "retry=1"));
        let e = err("503+retry-after=x");
        assert_eq!((e.column, e.token.as_str()), (17, "x"));
        assert!(e.expected.contains("Retry-After"), "{e}");
        assert_eq!(err("503+retry-after=").column, 17);
        assert_eq!(err("503+retry-after=+5").token, "+5");
        assert_eq!(err("503+retry-after=4294967296").token, "4294967296");
        assert!(
            Script::new(vec![Step::new(Action::RetryAfter {
                code: 199,
                seconds: 1
            })])
            .is_none()
        );
        // Relative targets: ./ and ../, resolved by the client against its URL.
        let s = Script::parse("redirect=./next,303=../up,308=./a?b=1").unwrap();
        assert_eq!(s.to_string(), "redirect=./next,303=../up,308=./a?b=1");
        assert_eq!(s.steps()[0].action, Action::Redirect(Some("./next".into())));
        assert_eq!(err("redirect=next").column, 10);
        assert_eq!(err("redirect=.next").column, 10);
    }

    #[test]
    fn parses_every_form() {
        let s =
            Script::parse("503*2, 200@1500ms,reset,hang,GARBAGE,redirect,redirect=/other,410@2s*3")
                .unwrap();
        assert_eq!(
            s.to_string(),
            "503*2,200@1500ms,reset,hang,garbage,redirect,redirect=/other,410@2s*3"
        );
        assert_eq!(
            s.steps()[0],
            Step {
                action: Action::Status(503),
                delay: Duration::ZERO,
                repeat: 2
            }
        );
        assert_eq!(s.steps()[1].delay, Duration::from_millis(1500));
        assert_eq!(s.steps()[6].action, Action::Redirect(Some("/other".into())));
        // Either order of suffixes; 1m is 60s.
        assert_eq!(Script::parse("503*3@1m").unwrap().to_string(), "503@60s*3");
        assert_eq!(Script::parse("200*1@0ms").unwrap().to_string(), "200");
        assert_eq!(
            Script::parse("redirect=https://example.com/x?y=1")
                .unwrap()
                .to_string(),
            "redirect=https://example.com/x?y=1"
        );
    }

    #[test]
    fn steps_expand_and_the_last_repeats() {
        let s = Script::parse("503*2,reset,200").unwrap();
        let seq: Vec<String> = (0..6).map(|i| s.step_for(i).single().to_string()).collect();
        assert_eq!(seq, ["503", "503", "reset", "200", "200", "200"]);
        assert_eq!(s.step_for(u64::MAX).to_string(), "200");
    }

    #[test]
    fn errors_point_at_the_token() {
        let e = err("503*x,200");
        assert_eq!((e.offset, e.column, e.token.as_str()), (4, 5, "x"));
        assert_eq!(
            e.to_string(),
            "invalid script \"503*x,200\" at column 5: found \"x\", expected a repeat count from 1 to 1000000 after '*' (as in 503*3)"
        );
        assert_eq!(e.snippet(), "  503*x,200\n      ^");

        let e = err("200,,503");
        assert_eq!((e.column, e.token.as_str()), (5, ""));
        assert!(
            e.to_string().contains("found nothing, expected a step"),
            "{e}"
        );

        let e = err("200,teapot");
        assert_eq!((e.column, e.token.as_str()), (5, "teapot"));

        let e = err("200@1.5s");
        assert_eq!((e.column, e.token.as_str()), (5, "1.5s"));
        assert!(e.expected.contains("delay"));

        let e = err("99");
        assert!(e.expected.contains("200 to 599"), "{e}");
        assert_eq!(err("600").token, "600");
        assert_eq!(err("0200").token, "0200");
        assert_eq!(err("503*0").token, "0");
        assert_eq!(err("503*2*3").token, "*");
        assert_eq!(err("503@1s@2s").column, 7);
        assert_eq!(err("redirect=other").column, 10);
        assert_eq!(err("reset=/x").token, "reset=/x");
        assert_eq!(err("200@25h").token, "25h");
        assert_eq!(err("200@1441m").token, "1441m");
        assert_eq!(Script::parse("200@24h").unwrap().to_string(), "200@86400s");
        assert_eq!(err("").column, 1);
        assert_eq!(err("200,").column, 5);
        // Columns count characters, not bytes.
        assert_eq!(err("é,x").column, 1);
        assert_eq!(err("200,é").column, 5);
    }

    #[test]
    fn serde_is_the_text() {
        let s = Script::parse("503*2,200").unwrap();
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"503*2,200\"");
        assert_eq!(serde_json::from_str::<Script>("\"503*2,200\"").unwrap(), s);
        let e = serde_json::from_str::<Script>("\"5o3\"").unwrap_err();
        assert!(e.to_string().contains("column 1"), "{e}");
    }

    #[test]
    fn new_checks_bounds() {
        assert!(Script::new(vec![]).is_none());
        assert!(
            Script::new(vec![Step {
                repeat: 0,
                ..Step::new(Action::Hang)
            }])
            .is_none()
        );
        assert!(Script::new(vec![Step::new(Action::Status(101))]).is_none());
        assert!(Script::new(vec![Step::new(Action::Redirect(Some("x y".into())))]).is_none());
        assert!(
            Script::new(vec![Step {
                delay: Duration::from_micros(1500),
                ..Step::new(Action::Hang)
            }])
            .is_none()
        );
        assert_eq!(
            Script::new(vec![Step::new(Action::Status(200))]),
            Some(Script::default())
        );
    }
}
