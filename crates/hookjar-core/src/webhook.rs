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

fn read_fields(map: &Map<String, Value>, source: Source) -> Result<WebhookPatch, ValidationErrors> {
    let mut errors = ValidationErrors::default();
    let mut patch = WebhookPatch::default();
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
            other => errors.add(
                "non_field_errors",
                format!(
                    "Unknown field \"{other}\"; the writable fields are {}.",
                    WRITABLE_FIELDS.join(", ")
                ),
            ),
        }
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

/// Checks a `target_url` (S2): an absolute http or https URL with a host, at most
/// 1024 characters. Returns every problem.
pub fn validate_target_url(url: &str) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    if url.chars().count() > MAX_TARGET_URL_LEN {
        errors.push(format!(
            "Ensure this field has no more than {MAX_TARGET_URL_LEN} characters."
        ));
    }
    let valid = match url::Url::parse(url) {
        Ok(u) => {
            matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some_and(|h| !h.is_empty())
                && url.trim() == url
        }
        Err(_) => false,
    };
    if !valid {
        errors.push("Enter a valid URL.".to_owned());
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Checks one additional header (S6): the name is an HTTP token and not one the
/// dispatcher owns; the value is one line of text without control bytes or
/// surrounding spaces (which HTTP would strip, so it could not be sent verbatim).
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
