//! The receiver's settings as plain data: which script answers what ([`Scripts`]),
//! what every request must carry ([`Expectations`]), and the whole [`MockConfig`] that
//! `hookjar mock --config mock.toml` reads.
//!
//! The flag-shaped parsers (`parse_route`, `parse_basic_auth`, …) live here too so the
//! CLI and the TOML file accept exactly the same text.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use hookjar_core::EventType;
use hookjar_core::script::Script;
use serde::{Deserialize, Serialize};

use crate::errors::{ConfigError, InvalidSetting};

/// How a script's position advances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Per {
    /// Each delivery (requests with the same body digest, X5) walks the script from its
    /// first step: `503*2,200` fails every event twice, then accepts it.
    #[default]
    Delivery,
    /// All requests answered by one script share one position.
    Request,
}

impl std::str::FromStr for Per {
    type Err = InvalidSetting;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "delivery" => Ok(Per::Delivery),
            "request" => Ok(Per::Request),
            _ => Err(InvalidSetting(format!(
                "per {s:?}: expected \"delivery\" (each event walks the script) or \"request\" (every request advances it)"
            ))),
        }
    }
}

/// Which script answers which request: a per-path script wins over a per-type
/// script, which wins over the default.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scripts {
    /// The script for everything else (default `200`).
    #[serde(rename = "script", default)]
    pub default: Script,
    /// Scripts by exact request path (without the query), e.g. `/a`.
    #[serde(default)]
    pub routes: BTreeMap<String, Script>,
    /// Scripts by the payload's `event_type`.
    #[serde(default)]
    pub for_type: BTreeMap<EventType, Script>,
    /// How positions advance.
    #[serde(default)]
    pub per: Per,
}

/// A live change of scripts (`PUT /_mock/script`): each key given replaces that part;
/// keys left out stay as they are.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptUpdate {
    /// Replaces the default script.
    pub script: Option<Script>,
    /// Replaces every per-path script (`{}` removes them all).
    pub routes: Option<BTreeMap<String, Script>>,
    /// Replaces every per-type script (`{}` removes them all). Types are named as
    /// `--for-type` names them: `COURSE_COMPLETION` or `course-completion`.
    #[serde(default, deserialize_with = "for_type_names")]
    pub for_type: Option<BTreeMap<EventType, Script>>,
    /// Changes how positions advance.
    pub per: Option<Per>,
}

/// `for_type` keys by any name `EventType::from_str` reads (wire or kebab).
fn for_type_names<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<BTreeMap<EventType, Script>>, D::Error> {
    let raw: Option<BTreeMap<String, Script>> = Option::deserialize(d)?;
    raw.map(|m| {
        m.into_iter()
            .map(|(name, script)| {
                name.parse::<EventType>()
                    .map(|t| (t, script))
                    .map_err(serde::de::Error::custom)
            })
            .collect()
    })
    .transpose()
}

impl Scripts {
    /// Applies an update (see [`ScriptUpdate`]).
    pub fn apply(&mut self, update: ScriptUpdate) {
        if let Some(s) = update.script {
            self.default = s;
        }
        if let Some(r) = update.routes {
            self.routes = r
                .into_iter()
                .map(|(k, v)| (normalise_path(&k), v))
                .collect();
        }
        if let Some(t) = update.for_type {
            self.for_type = t;
        }
        if let Some(p) = update.per {
            self.per = p;
        }
    }
}

/// What every webhook request must carry; a request without it gets 401.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Expectations {
    /// `Authorization: Basic base64(user:pass)` (S8).
    pub basic_auth: Option<(String, String)>,
    /// Headers that must be present with exactly this value (S9), names
    /// case-insensitive.
    pub require_headers: Vec<(String, String)>,
}

/// Every setting of a receiver, as `hookjar mock --config FILE` reads it.
///
/// ```toml
/// addr = "127.0.0.1:8790"
/// script = "503*2,200"
/// per = "delivery"                 # or "request"
/// basic_auth = "user:pass"
/// journal = "mock.jsonl"
/// keep = 10000                     # requests kept in memory
/// keep_mib = 64                    # … and at most this many MiB of them
/// quiet = false
///
/// [routes]
/// "/a" = "503*3,200"
///
/// [for_type]
/// COURSE_COMPLETION = "410"
///
/// [require_headers]
/// x-client-id = "abc"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MockConfig {
    /// Where to listen (the CLI's `--addr`; the library binds a random port when `None`).
    pub addr: Option<SocketAddr>,
    /// Scripts and how they advance.
    pub scripts: Scripts,
    /// Auth and header requirements.
    pub expect: Expectations,
    /// Append every request to this JSONL file.
    pub journal: Option<PathBuf>,
    /// How many requests to keep in memory (default 10,000, see
    /// [`crate::MockReceiverBuilder::keep`]).
    pub keep: Option<usize>,
    /// How many bytes of journal lines to keep in memory (default 64 MiB, see
    /// [`crate::MockReceiverBuilder::keep_bytes`]; `keep_mib` in the file).
    pub keep_bytes: Option<usize>,
    /// No console line per request (CLI only).
    pub quiet: bool,
    /// Header-read timeout and connection cap (`--header-timeout`, `--max-connections`).
    pub limits: hookjar_net::Limits,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    addr: Option<toml::Spanned<String>>,
    script: Option<toml::Spanned<String>>,
    per: Option<toml::Spanned<String>>,
    basic_auth: Option<toml::Spanned<String>>,
    journal: Option<PathBuf>,
    keep: Option<usize>,
    keep_mib: Option<usize>,
    quiet: Option<bool>,
    #[serde(default)]
    routes: BTreeMap<String, toml::Spanned<String>>,
    #[serde(default)]
    for_type: BTreeMap<String, toml::Spanned<String>>,
    #[serde(default)]
    require_headers: BTreeMap<String, toml::Spanned<String>>,
}

impl MockConfig {
    /// Reads a TOML config file. Errors name the file and the line.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse_toml(&text, &path.display().to_string())
    }

    /// Parses TOML config text (see the type's docs for the keys).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Self::parse_toml(text, "config")
    }

    fn parse_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let err_at = |offset: usize, message: String| ConfigError::Parse {
            origin: origin.to_owned(),
            line: line_of(text, offset),
            message,
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            err_at(
                e.span().map_or(0, |s| s.start),
                format!("{}; see docs/mock.md for the keys", e.message().trim_end()),
            )
        })?;
        let script = |s: &toml::Spanned<String>| {
            Script::parse(s.get_ref()).map_err(|e| err_at(s.span().start, e.to_string()))
        };
        let mut cfg = MockConfig::default();
        if let Some(a) = &raw.addr {
            cfg.addr = Some(parse_addr(a.get_ref()).map_err(|e| err_at(a.span().start, e.0))?);
        }
        if let Some(s) = &raw.script {
            cfg.scripts.default = script(s)?;
        }
        if let Some(p) = &raw.per {
            cfg.scripts.per = p
                .get_ref()
                .parse()
                .map_err(|e: InvalidSetting| err_at(p.span().start, e.0))?;
        }
        if let Some(b) = &raw.basic_auth {
            cfg.expect.basic_auth =
                Some(parse_basic_auth(b.get_ref()).map_err(|e| err_at(b.span().start, e.0))?);
        }
        for (path, s) in &raw.routes {
            if !path.starts_with('/') {
                return Err(err_at(
                    s.span().start,
                    format!("route {path:?} must be a path starting with '/', like \"/hooks/a\""),
                ));
            }
            cfg.scripts.routes.insert(path.clone(), script(s)?);
        }
        for (name, s) in &raw.for_type {
            let t: EventType = name
                .parse()
                .map_err(|e| err_at(s.span().start, format!("[for_type] {e}")))?;
            cfg.scripts.for_type.insert(t, script(s)?);
        }
        for (name, v) in &raw.require_headers {
            let (n, val) = parse_header(&format!("{name}: {}", v.get_ref()))
                .map_err(|e| err_at(v.span().start, e.0))?;
            cfg.expect.require_headers.push((n, val));
        }
        cfg.journal = raw.journal;
        cfg.keep = raw.keep;
        cfg.keep_bytes = raw.keep_mib.map(|mib| mib.saturating_mul(1 << 20));
        cfg.quiet = raw.quiet.unwrap_or(false);
        Ok(cfg)
    }
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Makes a route key a path: `a` → `/a`; a query is dropped.
pub(crate) fn normalise_path(p: &str) -> String {
    let p = p.split('?').next().unwrap_or_default();
    if p.starts_with('/') {
        p.to_owned()
    } else {
        format!("/{p}")
    }
}

/// `127.0.0.1:8790` or `localhost:8790` → a socket address (a host name is resolved,
/// IPv4 first).
pub fn parse_addr(s: &str) -> Result<SocketAddr, InvalidSetting> {
    let s = s.trim();
    if let Ok(addr) = s.parse() {
        return Ok(addr);
    }
    let bad = || {
        InvalidSetting(format!(
            "address {s:?} is not HOST:PORT; write e.g. 127.0.0.1:8790 or localhost:8790 (or 0.0.0.0:8790 to listen on every interface)"
        ))
    };
    // HOST:PORT with a name (localhost:8790): resolved now, IPv4 first.
    match s.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
        _ => return Err(bad()),
    }
    let addrs: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(s)
        .map_err(|e| InvalidSetting(format!("address {s:?}: cannot resolve the host name ({e}); write an IP such as 127.0.0.1:8790")))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(bad)
}

/// `/a=503*3,200` → (`/a`, script). The path must start with `/`.
pub fn parse_route(s: &str) -> Result<(String, Script), InvalidSetting> {
    let (path, script) = s.split_once('=').ok_or_else(|| {
        InvalidSetting(format!(
            "route {s:?} has no '=': write PATH=SCRIPT, e.g. /a=503*3,200"
        ))
    })?;
    let path = path.trim();
    if !path.starts_with('/') {
        return Err(InvalidSetting(format!(
            "route {s:?}: the path must start with '/', e.g. /a=503*3,200"
        )));
    }
    let script = Script::parse(script).map_err(|e| InvalidSetting(format!("route {path}: {e}")))?;
    Ok((normalise_path(path), script))
}

/// `COURSE_COMPLETION=410` → (type, script). Kebab names (`course-completion`) work too.
pub fn parse_for_type(s: &str) -> Result<(EventType, Script), InvalidSetting> {
    let (name, script) = s.split_once('=').ok_or_else(|| {
        InvalidSetting(format!(
            "{s:?} has no '=': write TYPE=SCRIPT, e.g. COURSE_COMPLETION=410"
        ))
    })?;
    let t: EventType = name
        .trim()
        .parse()
        .map_err(|e| InvalidSetting(format!("{e}")))?;
    let script = Script::parse(script).map_err(|e| InvalidSetting(format!("for type {t}: {e}")))?;
    Ok((t, script))
}

/// `user:pass` → (user, pass). The password may contain ':'.
pub fn parse_basic_auth(s: &str) -> Result<(String, String), InvalidSetting> {
    let (u, p) = s.split_once(':').ok_or_else(|| {
        InvalidSetting(
            "basic auth has no ':': write USER:PASS, e.g. customer:secret (an empty half is allowed, as in customer:)"
                .to_owned(),
        )
    })?;
    Ok((u.to_owned(), p.to_owned()))
}

/// `name: value` → (name, value). The name must be an HTTP token.
pub fn parse_header(s: &str) -> Result<(String, String), InvalidSetting> {
    let (name, value) = s.split_once(':').ok_or_else(|| {
        InvalidSetting(format!(
            "header {s:?} has no ':': write 'NAME: VALUE', e.g. 'x-client-id: abc'"
        ))
    })?;
    let name = name.trim();
    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(InvalidSetting(format!(
            "header name {name:?} is not a valid HTTP header name (letters, digits and -_.!#$%&'*+^`|~ only)"
        )));
    }
    let value = value.trim();
    if http::HeaderValue::from_str(value).is_err() {
        return Err(InvalidSetting(format!(
            "the value of header {name:?} has control characters; write plain text"
        )));
    }
    Ok((name.to_ascii_lowercase(), value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_toml() {
        let cfg = MockConfig::from_toml(
            r#"
addr = "127.0.0.1:9999"
script = "503*2,200"
per = "request"
basic_auth = "u:p:q"
journal = "j.jsonl"
keep = 5
keep_mib = 3
quiet = true
[routes]
"/a" = "reset"
[for_type]
COURSE_COMPLETION = "410"
[require_headers]
X-Client-Id = "abc"
"#,
        )
        .unwrap();
        assert_eq!(cfg.addr, Some("127.0.0.1:9999".parse().unwrap()));
        assert_eq!(cfg.scripts.default.to_string(), "503*2,200");
        assert_eq!(cfg.scripts.per, Per::Request);
        assert_eq!(cfg.scripts.routes["/a"].to_string(), "reset");
        assert_eq!(
            cfg.scripts.for_type[&EventType::CourseCompletion].to_string(),
            "410"
        );
        assert_eq!(cfg.expect.basic_auth, Some(("u".into(), "p:q".into())));
        assert_eq!(
            cfg.expect.require_headers,
            vec![("x-client-id".into(), "abc".into())]
        );
        assert_eq!(cfg.journal, Some(PathBuf::from("j.jsonl")));
        assert_eq!(cfg.keep, Some(5));
        assert_eq!(cfg.keep_bytes, Some(3 << 20));
        assert!(cfg.quiet);
    }

    #[test]
    fn errors_name_the_line() {
        let e = MockConfig::from_toml("script = \"200\"\n\n[routes]\n\"/a\" = \"503*x\"\n")
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("config line 4: invalid script \"503*x\" at column 5"),
            "{msg}"
        );

        let e = MockConfig::from_toml("script = \"200\"\nscirpt = \"503\"\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("config line 2: unknown field `scirpt`"),
            "{e}"
        );

        let e = MockConfig::from_toml("[for_type]\nCOURSE_STARTED = \"410\"\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("config line 2: [for_type] unknown event type"),
            "{e}"
        );

        let e = MockConfig::from_toml("per = \"event\"\n").unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");

        let e = MockConfig::from_toml("a = \n").unwrap_err();
        assert!(e.to_string().starts_with("config line 1:"), "{e}");
    }

    #[test]
    fn flag_parsers() {
        let (p, s) = parse_route("/a=503*3,200").unwrap();
        assert_eq!((p.as_str(), s.to_string().as_str()), ("/a", "503*3,200"));
        assert!(
            parse_route("a=200")
                .unwrap_err()
                .0
                .contains("must start with '/'")
        );
        assert!(parse_route("/a").unwrap_err().0.contains("no '='"));
        assert!(parse_route("/a=5x").unwrap_err().0.contains("column 1"));
        let (t, _) = parse_for_type("course-completion=410").unwrap();
        assert_eq!(t, EventType::CourseCompletion);
        assert!(
            parse_for_type("NOPE=410")
                .unwrap_err()
                .0
                .contains("unknown event type")
        );
        assert_eq!(
            parse_header("X-A:  b c ").unwrap(),
            ("x-a".into(), "b c".into())
        );
        assert!(parse_header("bad name: x").is_err());
        assert!(parse_basic_auth("nocolon").is_err());
        assert_eq!(parse_basic_auth("u:").unwrap(), ("u".into(), String::new()));
        assert!(parse_addr("localhost").is_err());
        assert_eq!("REQUEST".parse::<Per>().unwrap(), Per::Request);
    }

    #[test]
    fn updates_replace_only_given_keys() {
        let mut s = Scripts::default();
        s.routes.insert("/a".into(), Script::status(410));
        let u: ScriptUpdate = serde_json::from_str(r#"{"script": "503,200"}"#).unwrap();
        s.apply(u);
        assert_eq!(s.default.to_string(), "503,200");
        assert_eq!(s.routes.len(), 1);
        let u: ScriptUpdate = serde_json::from_str(
            r#"{"routes": {}, "for_type": {"PATH_COMPLETION": "reset"}, "per": "request"}"#,
        )
        .unwrap();
        s.apply(u);
        assert!(s.routes.is_empty());
        assert_eq!(s.for_type[&EventType::PathCompletion].to_string(), "reset");
        assert_eq!(s.per, Per::Request);
        assert!(serde_json::from_str::<ScriptUpdate>(r#"{"scripts": "200"}"#).is_err());
        // Kebab names, as --for-type takes them (issue #13).
        let u: ScriptUpdate =
            serde_json::from_str(r#"{"for_type": {"course-completion": "410"}}"#).unwrap();
        s.apply(u);
        assert_eq!(s.for_type[&EventType::CourseCompletion].to_string(), "410");
        let e = serde_json::from_str::<ScriptUpdate>(r#"{"for_type": {"nope": "410"}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown event type \"nope\""), "{e}");
    }
}
