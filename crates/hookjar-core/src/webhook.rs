//! Webhooks as the management API sees them (S2–S6), and their validation.
//!
//! Input arrives as a JSON object or as form pairs; [`WebhookPatch::from_json`] and
//! [`WebhookPatch::from_form`] read it into typed fields and return *every* field error
//! at once as a DRF-style [`ValidationErrors`] body (`{"target_url": ["Enter a valid
//! URL."]}`). [`NewWebhook`] is a patch that has a `target_url`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::event_type::EventType;
use crate::payload::json_kind;
use crate::verdict::DeactivateReason;

/// What a stored password reads back as (S3, settled).
pub const PASSWORD_MASK: &str = "********";
/// The longest `target_url` Skilljar accepts (S2).
pub const MAX_TARGET_URL_LEN: usize = 1024;
/// Headers the dispatcher owns; `additional_headers` may not replace them (S6).
pub const RESERVED_HEADERS: [&str; 7] = [
    "content-type",
    "user-agent",
    "authorization",
    "content-length",
    "host",
    "transfer-encoding",
    "connection",
];
/// Hop-by-hop header names (RFC 9110 §7.6.1) that `additional_headers` may not
/// set (S6): they describe one connection, not the message. Any `Proxy-*` name is
/// refused too.
pub const HOP_BY_HOP_HEADERS: [&str; 4] = ["upgrade", "te", "keep-alive", "expect"];
/// The longest additional header value, in bytes (S6, settled: receivers commonly
/// answer 431 above 8 KiB of headers).
pub const MAX_HEADER_VALUE_BYTES: usize = 8 * 1024;
/// The most additional headers one webhook may have (S6, settled).
pub const MAX_ADDITIONAL_HEADERS: usize = 50;
/// The fields a client may write.
pub const WRITABLE_FIELDS: [&str; 6] = [
    "target_url",
    "active",
    "event_type",
    "basic_auth_username",
    "basic_auth_password",
    "additional_headers",
];
/// Fields a client may send back unchanged (as in a GET → PUT round trip); they are
/// ignored, as Django REST framework ignores read-only fields.
pub const READ_ONLY_FIELDS: [&str; 2] = ["id", "deactivate_reason"];

/// Additional headers, name → value, sent on every POST (S9).
pub type Headers = BTreeMap<String, String>;

/// A registered webhook (S3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    /// `^[0-9a-z]+$`, 13 characters.
    pub id: String,
    /// Where events are POSTed.
    pub target_url: String,
    /// Whether events are delivered.
    pub active: bool,
    /// Why the dispatcher deactivated it, if it did.
    pub deactivate_reason: Option<DeactivateReason>,
    /// The one type it receives, or `None` for all (S12).
    pub event_type: Option<EventType>,
    /// Basic auth username (S8); empty when unset.
    pub basic_auth_username: String,
    /// Basic auth password (S8); empty when unset.
    pub basic_auth_password: String,
    /// Sent verbatim on every POST (S9).
    pub additional_headers: Headers,
}

impl Webhook {
    /// A new webhook from validated input.
    pub fn create(id: String, new: NewWebhook) -> Self {
        Webhook {
            id,
            target_url: new.target_url,
            active: new.active,
            deactivate_reason: None,
            event_type: new.event_type,
            basic_auth_username: new.basic_auth_username,
            basic_auth_password: new.basic_auth_password,
            additional_headers: new.additional_headers,
        }
    }

    /// Applies a validated update (S4). `active: true` re-activates and clears
    /// `deactivate_reason`; fields the patch leaves out keep their values.
    pub fn apply(&mut self, patch: WebhookPatch) {
        if let Some(url) = patch.target_url {
            self.target_url = url;
        }
        if let Some(active) = patch.active {
            if active {
                self.deactivate_reason = None;
            }
            self.active = active;
        }
        if let Some(t) = patch.event_type {
            self.event_type = t;
        }
        if let Some(u) = patch.basic_auth_username {
            self.basic_auth_username = u;
        }
        if let Some(p) = patch.basic_auth_password {
            self.basic_auth_password = p;
        }
        if let Some(h) = patch.additional_headers {
            self.additional_headers = h;
        }
    }

    /// Deactivates the webhook with a reason (S15, S16, S18).
    pub fn deactivate(&mut self, reason: DeactivateReason) {
        self.active = false;
        self.deactivate_reason = Some(reason);
    }

    /// The webhook as the API shows it: a set password reads `"********"` unless
    /// `reveal` (S3).
    pub fn view(&self, reveal: bool) -> Webhook {
        let mut out = self.clone();
        if !reveal && !out.basic_auth_password.is_empty() {
            out.basic_auth_password = PASSWORD_MASK.to_owned();
        }
        out
    }

    /// Whether an event of `event_type` goes to this webhook (S12): it is active and
    /// takes that type or all types.
    pub fn receives(&self, event_type: EventType) -> bool {
        self.active && self.event_type.is_none_or(|t| t == event_type)
    }
}

/// A new webhook's id: 13 base-36 characters from 64 random bits (S3). The caller
/// supplies the randomness, so this stays pure.
pub fn webhook_id(random: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut n = random;
    let mut out = [b'0'; 13];
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(n % 36) as usize];
        n /= 36;
    }
    String::from_utf8(out.to_vec()).expect("ASCII digits")
}

/// Whether `id` has the form of S3's ids (`^[0-9a-z]+$`).
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

/// Every field error of one request, keyed by field (DRF style, S6). Errors that
/// belong to no field are under `non_field_errors`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ValidationErrors(pub BTreeMap<String, Vec<String>>);

impl ValidationErrors {
    /// Adds a message to `field`.
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0
            .entry(field.to_owned())
            .or_default()
            .push(message.into());
    }

    /// A single non-field error.
    pub fn non_field(message: impl Into<String>) -> Self {
        let mut e = ValidationErrors::default();
        e.add("non_field_errors", message);
        e
    }

    /// Whether no error was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The messages for one field.
    pub fn field(&self, field: &str) -> &[String] {
        self.0.get(field).map(Vec::as_slice).unwrap_or(&[])
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (field, messages) in &self.0 {
            for m in messages {
                if !first {
                    f.write_str("; ")?;
                }
                first = false;
                write!(f, "{field}: {m}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

/// A validated update: `None` leaves a field as it is (S4: PUT and PATCH are partial).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookPatch {
    pub target_url: Option<String>,
    pub active: Option<bool>,
    /// `Some(None)` sets "all types".
    pub event_type: Option<Option<EventType>>,
    pub basic_auth_username: Option<String>,
    /// `None` also when the client sent back the mask `"********"`: the stored
    /// password is kept (S3).
    pub basic_auth_password: Option<String>,
    pub additional_headers: Option<Headers>,
}

/// A validated create request (S2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWebhook {
    pub target_url: String,
    pub active: bool,
    pub event_type: Option<EventType>,
    pub basic_auth_username: String,
    pub basic_auth_password: String,
    pub additional_headers: Headers,
}

impl NewWebhook {
    /// A webhook for `target_url` with every default: active, all types, no auth.
    pub fn to(target_url: impl Into<String>) -> Self {
        NewWebhook {
            target_url: target_url.into(),
            active: true,
            event_type: None,
            basic_auth_username: String::new(),
            basic_auth_password: String::new(),
            additional_headers: Headers::new(),
        }
    }

    /// Reads a create body given as JSON.
    pub fn from_json(value: &Value) -> Result<Self, ValidationErrors> {
        let mask = value.get("basic_auth_password").and_then(Value::as_str) == Some(PASSWORD_MASK);
        let has_url = value.get("target_url").is_some();
        Self::from_patch(WebhookPatch::from_json(value), has_url, mask)
    }

    /// Reads a create body given as form (or multipart) pairs.
    pub fn from_form(pairs: &[(String, String)]) -> Result<Self, ValidationErrors> {
        let mask = pairs
            .iter()
            .any(|(k, v)| k == "basic_auth_password" && v == PASSWORD_MASK);
        let has_url = pairs.iter().any(|(k, _)| k == "target_url");
        Self::from_patch(WebhookPatch::from_form(pairs), has_url, mask)
    }

    /// `has_url`: whether the input named `target_url` at all (it may have been
    /// refused for its value, which is reported as such, not as missing).
    fn from_patch(
        patch: Result<WebhookPatch, ValidationErrors>,
        has_url: bool,
        mask_sent: bool,
    ) -> Result<Self, ValidationErrors> {
        let (patch, mut errors) = match patch {
            Ok(p) => (p, ValidationErrors::default()),
            Err(e) => (WebhookPatch::default(), e),
        };
        if !has_url {
            errors.add("target_url", "This field is required.");
        }
        if mask_sent {
            errors.add(
                "basic_auth_password",
                format!("\"{PASSWORD_MASK}\" is how a stored password reads back; send the real password."),
            );
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(NewWebhook {
            target_url: patch.target_url.expect("checked above"),
            active: patch.active.unwrap_or(true),
            event_type: patch.event_type.flatten(),
            basic_auth_username: patch.basic_auth_username.unwrap_or_default(),
            basic_auth_password: patch.basic_auth_password.unwrap_or_default(),
            additional_headers: patch.additional_headers.unwrap_or_default(),
        })
    }
}

impl WebhookPatch {
    /// Reads an update (or create) body given as a JSON object.
    pub fn from_json(value: &Value) -> Result<Self, ValidationErrors> {
        let Value::Object(map) = value else {
            return Err(ValidationErrors::non_field(format!(
                "Invalid data. Expected a dictionary, but got {}.",
                json_kind(value)
            )));
        };
        read_fields(map, Source::Json)
    }

    /// Reads form-urlencoded or multipart pairs. Values are strings: `active` takes
    /// `true`/`false` (and DRF's other spellings), `additional_headers` takes a JSON
    /// object string such as `{"example_client_id":"abdcjkcjdidshdshkn"}`. A repeated
    /// key keeps its last value.
    pub fn from_form(pairs: &[(String, String)]) -> Result<Self, ValidationErrors> {
        let mut map = Map::new();
        for (k, v) in pairs {
            map.insert(k.clone(), Value::String(v.clone()));
        }
        read_fields(&map, Source::Form)
    }

    /// Whether the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == WebhookPatch::default()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Json,
    Form,
}

/// Unknown fields named in a refusal; the rest are counted in one more message.
const MAX_UNKNOWN_NAMED: usize = 5;

fn read_fields(map: &Map<String, Value>, source: Source) -> Result<WebhookPatch, ValidationErrors> {
    let mut errors = ValidationErrors::default();
    let mut patch = WebhookPatch::default();
    let mut unknown = 0usize;
    for (key, value) in map {
        match key.as_str() {
            "target_url" => match read_string(value, false) {
                Ok(url) => match validate_target_url(&url) {
                    Ok(()) => patch.target_url = Some(url),
                    Err(msgs) => msgs.into_iter().for_each(|m| errors.add(key, m)),
                },
                Err(m) => errors.add(key, m),
            },
            "active" => match read_bool(value) {
                Ok(b) => patch.active = Some(b),
                Err(m) => errors.add(key, m),
            },
            "event_type" => match value {
                Value::Null => patch.event_type = Some(None),
                Value::String(s) if s.trim().is_empty() => patch.event_type = Some(None),
                Value::String(s) => match EventType::ALL.into_iter().find(|t| t.as_str() == s) {
                    Some(t) => patch.event_type = Some(Some(t)),
                    None => errors.add(
                        key,
                        format!(
                            "\"{s}\" is not a valid choice. Valid choices: {} (or leave it blank for all types).",
                            EventType::valid_names()
                        ),
                    ),
                },
                other => errors.add(
                    key,
                    format!("Expected one of the event type names, got {}.", json_kind(other)),
                ),
            },
            "basic_auth_username" => match read_string(value, true) {
                Ok(s) => patch.basic_auth_username = Some(s),
                Err(m) => errors.add(key, m),
            },
            "basic_auth_password" => match read_string(value, true) {
                Ok(s) if s == PASSWORD_MASK => {} // keep the stored one (S3)
                Ok(s) => patch.basic_auth_password = Some(s),
                Err(m) => errors.add(key, m),
            },
            "additional_headers" => match read_headers(value, source) {
                Ok(h) => patch.additional_headers = Some(h),
                Err(msgs) => msgs.into_iter().for_each(|m| errors.add(key, m)),
            },
            k if READ_ONLY_FIELDS.contains(&k) => {}
            other => {
                // Named one by one up to a point: a body of thousands of unknown
                // keys must not get an answer many times its size.
                unknown += 1;
                if unknown <= MAX_UNKNOWN_NAMED {
                    errors.add(
                        "non_field_errors",
                        format!(
                            "Unknown field \"{other}\"; the writable fields are {}.",
                            WRITABLE_FIELDS.join(", ")
                        ),
                    );
                }
            }
        }
    }
    if unknown > MAX_UNKNOWN_NAMED {
        errors.add(
            "non_field_errors",
            format!("…and {} more unknown fields.", unknown - MAX_UNKNOWN_NAMED),
        );
    }
    if errors.is_empty() {
        Ok(patch)
    } else {
        Err(errors)
    }
}

fn read_string(value: &Value, allow_blank: bool) -> Result<String, String> {
    match value {
        Value::String(s) if s.is_empty() && !allow_blank => {
            Err("This field may not be blank.".to_owned())
        }
        Value::String(s) => Ok(s.clone()),
        Value::Null => Err("This field may not be null.".to_owned()),
        other => Err(format!("Not a valid string (got {}).", json_kind(other))),
    }
}

/// DRF's `BooleanField` spellings.
fn read_bool(value: &Value) -> Result<bool, String> {
    const TRUE: [&str; 10] = [
        "t", "T", "true", "True", "TRUE", "on", "On", "ON", "1", "yes",
    ];
    const FALSE: [&str; 10] = [
        "f", "F", "false", "False", "FALSE", "off", "Off", "OFF", "0", "no",
    ];
    match value {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) if n.as_u64() == Some(1) => Ok(true),
        Value::Number(n) if n.as_u64() == Some(0) => Ok(false),
        Value::String(s) if TRUE.contains(&s.as_str()) => Ok(true),
        Value::String(s) if FALSE.contains(&s.as_str()) => Ok(false),
        Value::Null => Err("This field may not be null.".to_owned()),
        _ => Err("Must be a valid boolean (true or false).".to_owned()),
    }
}

fn read_headers(value: &Value, source: Source) -> Result<Headers, Vec<String>> {
    let parsed;
    let value = match (source, value) {
        (Source::Form, Value::String(s)) if s.trim().is_empty() => return Ok(Headers::new()),
        (Source::Form, Value::String(s)) => {
            parsed = serde_json::from_str::<Value>(s).map_err(|e| {
                vec![format!(
                    "Expected a JSON object of header name to value, such as {{\"example_client_id\":\"abdcjkcjdidshdshkn\"}} ({e})."
                )]
            })?;
            &parsed
        }
        _ => value,
    };
    let Value::Object(map) = value else {
        return Err(vec![format!(
            "Expected an object of header name to value, got {}.",
            json_kind(value)
        )]);
    };
    let mut errors = Vec::new();
    if map.len() > MAX_ADDITIONAL_HEADERS {
        errors.push(format!(
            "Ensure there are no more than {MAX_ADDITIONAL_HEADERS} headers (got {}).",
            map.len()
        ));
    }
    let mut out = Headers::new();
    let mut seen = std::collections::HashSet::new();
    for (name, v) in map {
        let Value::String(v) = v else {
            errors.push(format!(
                "Header \"{name}\": the value must be a string, got {}.",
                json_kind(v)
            ));
            continue;
        };
        if let Err(m) = validate_header(name, v) {
            errors.push(m);
            continue;
        }
        if !seen.insert(name.to_ascii_lowercase()) {
            errors.push(format!(
                "Header \"{name}\" is given twice (header names are case-insensitive)."
            ));
            continue;
        }
        out.insert(name.clone(), v.clone());
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Checks a `target_url` (S2, S6): at most 1024 characters, and valid by the rules
/// of Django's `URLValidator` (which Skilljar's API uses): scheme `http` or `https`,
/// optional `user:password@`, a host that is a domain name with a top-level domain,
/// `localhost`, an IPv4 address or a bracketed IPv6 address, an optional port, and no
/// whitespace or control character anywhere. On top of that, the URL must be sent as
/// stored: a URL whose path or query the HTTP client would rewrite (a backslash, a
/// character it must percent-encode such as `"` or `{`) is refused, so the request
/// line carries the stored path and query byte for byte (up to `.`/`..` segments
/// being resolved and non-ASCII characters percent-encoded, as every client does).
/// Returns every problem.
pub fn validate_target_url(url: &str) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    if url.chars().count() > MAX_TARGET_URL_LEN {
        errors.push(format!(
            "Ensure this field has no more than {MAX_TARGET_URL_LEN} characters."
        ));
    }
    let Some(parts) = django_url(url) else {
        errors.push("Enter a valid URL.".to_owned());
        return Err(errors);
    };
    if !sent_as_stored(url, &parts) {
        errors.push("Enter a valid URL.".to_owned());
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// The URL under which fan-out (S12) compares webhooks: the WHATWG serialisation
/// (lower-case scheme and host, default port dropped, dot segments resolved, an
/// empty path as `/`) without the fragment. A string that does not parse is its own
/// key.
pub fn normalise_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            u.set_fragment(None);
            u.into()
        }
        Err(_) => url.to_owned(),
    }
}

/// The raw path and query of a URL that passed [`django_url`].
struct UrlParts<'a> {
    path: &'a str,
    query: Option<&'a str>,
}

/// Django's `URLValidator` (http/https only), plus DRF's refusal of NUL and S6's of
/// every control character. Returns the raw path and query.
fn django_url(s: &str) -> Option<UrlParts<'_>> {
    if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return None;
    }
    let (scheme, rest) = s.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, resource) = rest.split_at(end);
    // `(?:[^\s:@/]+(?::[^\s:@/]*)?@)?`
    let hostport = match authority.split_once('@') {
        Some((userinfo, hostport)) => {
            let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            let plain = |t: &str| !t.contains([':', '@', '/']);
            if user.is_empty() || !plain(user) || !plain(password) {
                return None;
            }
            hostport
        }
        None => authority,
    };
    let (host, port) = if let Some(inner) = hostport.strip_prefix('[') {
        let (v6, after) = inner.split_once(']')?;
        let ok = !v6.is_empty()
            && v6
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
            && v6.parse::<std::net::Ipv6Addr>().is_ok();
        if !ok {
            return None;
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (None, port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(hostport), None),
        }
    };
    if let Some(port) = port {
        let digits =
            !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
        if !digits || port.parse::<u32>().ok()? > 65535 {
            return None;
        }
    }
    if let Some(host) = host {
        let ok = host.eq_ignore_ascii_case("localhost") || is_ipv4(host) || is_domain(host);
        if !ok || host.len() > 253 {
            return None;
        }
    }
    let resource = resource.split('#').next().unwrap_or("");
    let (path, query) = match resource.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (resource, None),
    };
    Some(UrlParts { path, query })
}

/// Django's IPv4 rule: four decimal octets 0–255 without leading zeros.
fn is_ipv4(host: &str) -> bool {
    let octets: Vec<&str> = host.split('.').collect();
    octets.len() == 4
        && octets.iter().all(|o| {
            !o.is_empty()
                && o.len() <= 3
                && o.bytes().all(|b| b.is_ascii_digit())
                && (o == &"0" || !o.starts_with('0'))
                && o.parse::<u16>().is_ok_and(|n| n <= 255)
        })
}

/// Django's host rule: labels of letters (any non-ASCII letter too), digits and
/// inner hyphens, at most 63 long, and a top-level domain of letters (or an `xn--`
/// punycode label); one trailing dot allowed.
fn is_domain(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    let labels: Vec<&str> = host.split('.').collect();
    if labels.len() < 2 {
        return false;
    }
    let unicode = |c: char| ('\u{a1}'..='\u{ffff}').contains(&c);
    let alnum = |c: char| c.is_ascii_alphanumeric() || unicode(c);
    let label_ok = |l: &str| {
        let n = l.chars().count();
        (1..=63).contains(&n)
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| alnum(c) || c == '-')
    };
    let (tld, rest) = labels.split_last().expect("two labels or more");
    let tld_ok = {
        let n = tld.chars().count();
        let letters = (2..=63).contains(&n)
            && !tld.starts_with('-')
            && !tld.ends_with('-')
            && tld
                .chars()
                .all(|c| c.is_ascii_alphabetic() || unicode(c) || c == '-');
        let puny = tld.len() > 4
            && tld[..4].eq_ignore_ascii_case("xn--")
            && tld.len() <= 63
            && tld[4..].bytes().all(|b| b.is_ascii_alphanumeric());
        letters || puny
    };
    tld_ok && rest.iter().all(|l| label_ok(l))
}

/// Whether the HTTP client (the `url` crate, as reqwest uses it) sends this URL's
/// path and query as given: only dot segments resolved and non-ASCII characters
/// percent-encoded.
fn sent_as_stored(s: &str, parts: &UrlParts<'_>) -> bool {
    let Ok(u) = url::Url::parse(s) else {
        return false;
    };
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none_or(str::is_empty) {
        return false;
    }
    let path = if parts.path.is_empty() {
        "/".to_owned()
    } else {
        encode_non_ascii(&remove_dot_segments(parts.path))
    };
    let query = parts.query.map(encode_non_ascii);
    u.path() == path && u.query() == query.as_deref()
}

/// RFC 3986 §5.2.4.
fn remove_dot_segments(path: &str) -> String {
    let mut input = path;
    let mut out = String::with_capacity(path.len());
    let pop = |out: &mut String| {
        let cut = out.rfind('/').unwrap_or(0);
        out.truncate(cut);
    };
    while !input.is_empty() {
        if let Some(r) = input.strip_prefix("../") {
            input = r;
        } else if let Some(r) = input.strip_prefix("./") {
            input = r;
        } else if input.starts_with("/./") {
            input = &input[2..];
        } else if input == "/." {
            input = "/";
        } else if input.starts_with("/../") {
            input = &input[3..];
            pop(&mut out);
        } else if input == "/.." {
            input = "/";
            pop(&mut out);
        } else if input == "." || input == ".." {
            input = "";
        } else {
            let start = usize::from(input.starts_with('/'));
            let end = input[start..].find('/').map_or(input.len(), |i| i + start);
            out.push_str(&input[..end]);
            input = &input[end..];
        }
    }
    out
}

fn encode_non_ascii(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

/// Checks an API key (S5, S6): not empty, and without `:`, which HTTP Basic uses to
/// end the username, so no client could send such a key.
pub fn validate_api_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("the API key must not be empty".to_owned());
    }
    if key.contains(':') {
        return Err(
            "the API key contains ':', which no client can send as an HTTP Basic username (':' ends it); choose a key without ':'"
                .to_owned(),
        );
    }
    Ok(())
}

/// Checks one additional header (S6): the name is an HTTP token, not one the
/// dispatcher owns and not a hop-by-hop name; the value is at most 8 KiB of one line
/// of text without control bytes or surrounding spaces (which HTTP would strip, so it
/// could not be sent verbatim).
pub fn validate_header(name: &str, value: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("Header names may not be empty.".to_owned());
    }
    if !name.bytes().all(is_tchar) {
        return Err(format!(
            "Header name \"{name}\" is not a valid HTTP token (letters, digits and !#$%&'*+-.^_`|~ only)."
        ));
    }
    if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        let hint = if name.eq_ignore_ascii_case("authorization") {
            " Use basic_auth_username and basic_auth_password for Basic auth."
        } else {
            ""
        };
        return Err(format!(
            "Header \"{name}\" is set by the dispatcher and cannot be replaced.{hint}"
        ));
    }
    let lower = name.to_ascii_lowercase();
    if HOP_BY_HOP_HEADERS.contains(&lower.as_str()) || lower.starts_with("proxy-") {
        return Err(format!(
            "Header \"{name}\" is a hop-by-hop header (it describes one connection, not the message) and cannot be sent as an additional header."
        ));
    }
    if value.len() > MAX_HEADER_VALUE_BYTES {
        return Err(format!(
            "Header \"{name}\": the value is {} bytes; at most {MAX_HEADER_VALUE_BYTES} (8 KiB) are allowed.",
            value.len()
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(format!(
            "Header \"{name}\": the value contains a control character (CR, LF, tab or other); it must be one line of text."
        ));
    }
    if value.trim_matches(' ') != value {
        return Err(format!(
            "Header \"{name}\": the value has leading or trailing spaces, which HTTP would strip."
        ));
    }
    Ok(())
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    fn label() -> impl Strategy<Value = String> {
        "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?"
    }

    fn host() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("localhost".to_owned()),
            (0u8..=255, 0u8..=255, 0u8..=255, 0u8..=255)
                .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
            (proptest::collection::vec(label(), 1..3), "[a-z]{2,6}")
                .prop_map(|(ls, tld)| format!("{}.{tld}", ls.join("."))),
            Just("[::1]".to_owned()),
        ]
    }

    fn url() -> impl Strategy<Value = String> {
        (
            prop_oneof![Just("http"), Just("https"), Just("HTTP")],
            host(),
            proptest::option::of(1u32..=65535),
            proptest::collection::vec(
                prop_oneof![
                    Just(".".to_owned()),
                    Just("..".to_owned()),
                    "[a-zA-Z0-9_~%-]{0,8}"
                ],
                0..4,
            ),
            proptest::option::of("[a-z0-9=&%]{0,10}"),
        )
            .prop_map(|(scheme, host, port, segs, query)| {
                let mut u = format!("{scheme}://{host}");
                if let Some(p) = port {
                    u.push_str(&format!(":{p}"));
                }
                for s in segs {
                    u.push('/');
                    u.push_str(&s);
                }
                if let Some(q) = query {
                    u.push('?');
                    u.push_str(&q);
                }
                u
            })
    }

    proptest! {
        /// Well-formed URLs are accepted, their path and query are sent as stored (up
        /// to dot segments), and normalising is idempotent.
        #[test]
        fn well_formed_urls_are_accepted(u in url()) {
            let u = u.replace('%', "%25");
            prop_assert!(validate_target_url(&u).is_ok(), "{:?}", u);
            let n = normalise_url(&u);
            prop_assert_eq!(normalise_url(&n), n.clone());
            prop_assert!(validate_target_url(&n).is_ok(), "{:?}", n);
        }

        /// A whitespace or control character anywhere refuses the URL.
        #[test]
        fn whitespace_and_control_characters_are_refused(
            u in url(),
            at in any::<prop::sample::Index>(),
            c in prop_oneof![Just(' '), Just('\t'), Just('\n'), Just('\r'), Just('\u{0}'), Just('\u{7f}'), Just('\u{a0}')],
        ) {
            let u = u.replace('%', "%25");
            let i = at.index(u.len() + 1);
            let i = (0..=i).rev().find(|i| u.is_char_boundary(*i)).unwrap_or(0);
            let mut bad = u.clone();
            bad.insert(i, c);
            prop_assert!(validate_target_url(&bad).is_err(), "{:?}", bad);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn create_with_defaults() {
        let w = NewWebhook::from_json(&json!({"target_url": "https://example.com/hook"})).unwrap();
        assert_eq!(w, NewWebhook::to("https://example.com/hook"));
    }

    #[test]
    fn every_error_at_once() {
        let e = NewWebhook::from_json(&json!({
            "target_url": "ftp://example.com",
            "active": "maybe",
            "event_type": "COURSE_STARTED",
            "additional_headers": {"bad name": "x", "User-Agent": "me", "X-Ok": "a\r\nb"},
            "colour": "blue",
        }))
        .unwrap_err();
        assert_eq!(e.field("target_url"), ["Enter a valid URL."]);
        assert_eq!(
            e.field("active"),
            ["Must be a valid boolean (true or false)."]
        );
        assert!(e.field("event_type")[0].starts_with(
            "\"COURSE_STARTED\" is not a valid choice. Valid choices: DOMAIN_ENROLLMENT"
        ));
        assert_eq!(e.field("additional_headers").len(), 3);
        assert_eq!(
            e.field("non_field_errors"),
            [
                "Unknown field \"colour\"; the writable fields are target_url, active, event_type, basic_auth_username, basic_auth_password, additional_headers."
            ]
        );
    }

    #[test]
    fn a_valid_url_is_not_reported_missing_when_another_field_is_bad() {
        for body in [
            json!({"target_url": "http://x.example/", "active": "banana"}),
            json!({"target_url": "http://x.example/", "event_type": "NOPE"}),
            json!({"target_url": "http://x.example/", "additional_headers": {"x": 1}}),
            json!({"target_url": "http://x.example/", "basic_auth_username": null}),
        ] {
            let e = NewWebhook::from_json(&body).unwrap_err();
            assert!(e.field("target_url").is_empty(), "{body}: {e}");
            assert_eq!(e.0.len(), 1, "{body}: {e}");
        }
        let pairs = vec![
            ("target_url".to_owned(), "http://x.example/".to_owned()),
            ("active".to_owned(), "banana".to_owned()),
        ];
        let e = NewWebhook::from_form(&pairs).unwrap_err();
        assert!(e.field("target_url").is_empty(), "{e}");
    }

    #[test]
    fn missing_url_is_required() {
        let e = NewWebhook::from_json(&json!({})).unwrap_err();
        assert_eq!(e.field("target_url"), ["This field is required."]);
        let e = NewWebhook::from_json(&json!([])).unwrap_err();
        assert_eq!(
            e.field("non_field_errors"),
            ["Invalid data. Expected a dictionary, but got a list."]
        );
    }

    #[test]
    fn long_and_odd_urls() {
        let long = format!("https://example.com/{}", "a".repeat(1010));
        assert!(validate_target_url(&long).is_err());
        let ok = format!("https://example.com/{}", "a".repeat(1004));
        assert_eq!(ok.len(), 1024);
        assert!(validate_target_url(&ok).is_ok());
        for bad in [
            "example.com/hook",
            "/relative",
            "mailto:a@b.c",
            "http://",
            " https://example.com",
        ] {
            assert!(validate_target_url(bad).is_err(), "{bad}");
        }
        assert!(validate_target_url("http://127.0.0.1:8080/x?y=1").is_ok());
    }

    #[test]
    fn s6_django_url_rules() {
        for bad in [
            "http:127.0.0.1:18011/nohost",
            "http:///127.0.0.1:1/x",
            "http://127.0.0.1:1/sp ace",
            "http://127.0.0.1:1/a\u{0}b",
            "http://127.0.0.1:1/a\tb",
            "http://-bad-.com/",
            "http://bad-.com/",
            "http://nodot/",
            "http://example.c0m/",
            "http://256.1.1.1/",
            "http://01.1.1.1/",
            "http://[::1/x",
            "http://[zz::1]/x",
            "http://[::1]x/",
            "http://127.0.0.1:99999/x",
            "http://127.0.0.1:/x",
            "http://a@b@example.com/",
            "http://:pw@example.com/",
            "http://127.0.0.1:1/a\\b",
            "http://example.com/{x}",
            "http://example.com/?q=\"x\"",
            "ftp://example.com/x",
            "http://example.com/\u{85}",
        ] {
            assert!(validate_target_url(bad).is_err(), "{bad:?}");
        }
        for good in [
            "http://localhost/x",
            "http://LOCALHOST:80/x",
            "http://127.0.0.1:8080/x?y=1",
            "https://example.com",
            "HTTPS://Example.COM/Path",
            "http://[::1]:8080/x",
            "http://[2001:db8::1]/",
            "http://sub.example-site.co.uk/a/./b/../c",
            "http://user:pw@example.com/x",
            "http://example.com./x",
            "http://xn--bcher-kva.example/x",
            "http://b\u{fc}cher.example/caf\u{e9}?q=\u{e9}",
            "http://example.com/caf%C3%A9?q=a%20b#frag ment",
        ] {
            let good = good.replace(' ', "");
            assert!(validate_target_url(&good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn s12_urls_compare_normalised() {
        let n = normalise_url;
        assert_eq!(n("HTTP://LOCALHOST:80/dup"), "http://localhost/dup");
        assert_eq!(n("http://localhost/./dup"), n("http://localhost/x/../dup"));
        assert_eq!(n("https://Example.com:443"), "https://example.com/");
        assert_eq!(n("http://example.com/x#a"), n("http://example.com/x#b"));
        assert_ne!(n("http://example.com/X"), n("http://example.com/x"));
    }

    #[test]
    fn s5_api_keys_without_a_colon() {
        assert!(validate_api_key("k").is_ok());
        assert!(validate_api_key("").is_err());
        assert!(validate_api_key("user:pass").unwrap_err().contains("':'"));
    }

    #[test]
    fn s6_header_caps_and_hop_by_hop_names() {
        assert!(validate_header("x", &"v".repeat(MAX_HEADER_VALUE_BYTES)).is_ok());
        assert!(
            validate_header("x", &"v".repeat(MAX_HEADER_VALUE_BYTES + 1))
                .unwrap_err()
                .contains("8 KiB")
        );
        for name in [
            "Upgrade",
            "TE",
            "keep-alive",
            "Expect",
            "Proxy-Authorization",
        ] {
            assert!(
                validate_header(name, "x")
                    .unwrap_err()
                    .contains("hop-by-hop"),
                "{name}"
            );
        }
        let many: Map<String, Value> = (0..=MAX_ADDITIONAL_HEADERS)
            .map(|i| (format!("x-{i}"), Value::String("v".into())))
            .collect();
        let e = WebhookPatch::from_json(&serde_json::json!({ "additional_headers": many }))
            .unwrap_err();
        assert!(
            e.field("additional_headers")[0].contains("no more than 50"),
            "{e}"
        );
    }

    #[test]
    fn form_body() {
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let w = NewWebhook::from_form(&pairs(&[
            ("target_url", "https://example.com/h"),
            ("active", "false"),
            ("event_type", ""),
            (
                "additional_headers",
                r#"{"example_client_id":"abdcjkcjdidshdshkn"}"#,
            ),
        ]))
        .unwrap();
        assert!(!w.active);
        assert_eq!(w.event_type, None);
        assert_eq!(
            w.additional_headers["example_client_id"],
            "abdcjkcjdidshdshkn"
        );
        let e = NewWebhook::from_form(&pairs(&[
            ("target_url", "https://example.com/h"),
            ("additional_headers", "client_id: x"),
        ]))
        .unwrap_err();
        assert!(e.field("additional_headers")[0].starts_with("Expected a JSON object"));
    }

    #[test]
    fn patch_semantics() {
        let mut w = Webhook::create(webhook_id(7), NewWebhook::to("https://a.example/h"));
        w.basic_auth_password = "s3cret".into();
        w.deactivate(DeactivateReason::RetryCount);
        assert!(!w.receives(EventType::CourseEnrollment));
        let p = WebhookPatch::from_json(&json!({"target_url": "https://b.example/h"})).unwrap();
        w.apply(p);
        assert!(!w.active, "changing the URL does not re-activate");
        assert_eq!(w.deactivate_reason, Some(DeactivateReason::RetryCount));
        let p = WebhookPatch::from_json(
            &json!({"active": true, "basic_auth_password": "********", "id": "zzz"}),
        )
        .unwrap();
        w.apply(p);
        assert!(w.active);
        assert_eq!(w.deactivate_reason, None);
        assert_eq!(
            w.basic_auth_password, "s3cret",
            "the mask keeps the stored password"
        );
        assert_eq!(w.view(false).basic_auth_password, PASSWORD_MASK);
        assert_eq!(w.view(true).basic_auth_password, "s3cret");
        w.apply(WebhookPatch::from_json(&json!({"event_type": "LESSON_COMPLETION"})).unwrap());
        assert!(w.receives(EventType::LessonCompletion));
        assert!(!w.receives(EventType::CourseEnrollment));
    }

    #[test]
    fn ids() {
        assert_eq!(webhook_id(0), "0000000000000");
        assert_eq!(webhook_id(u64::MAX), "3w5e11264sgsf");
        assert!(is_valid_id(&webhook_id(123_456_789)));
        assert!(!is_valid_id("ABC"));
        assert!(!is_valid_id(""));
    }

    #[test]
    fn headers() {
        assert!(validate_header("x-my-new-header", "string").is_ok());
        assert!(validate_header("client_id", "examplestring2").is_ok());
        assert!(validate_header("X-Unicode", "café").is_ok());
        assert!(
            validate_header("authorization", "x")
                .unwrap_err()
                .contains("basic_auth_username")
        );
        assert!(validate_header("Host", "x").is_err());
        assert!(validate_header("x", "a\tb").is_err());
        assert!(validate_header("x", " a").is_err());
        assert!(validate_header("x y", "a").is_err());
        assert!(validate_header("", "a").is_err());
    }
}
