//! Events and their payloads (S11, S13, X5).
//!
//! A payload is a flat JSON object: `event_type`, `timestamp`, then the event's
//! objects. It is serialised once into a [`Payload`]; those bytes are what every
//! retry resends, and their [`Digest`] correlates the attempts of one delivery (X5).

use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use time::format_description::FormatItem;
use time::macros::format_description;

use crate::event_type::{EventType, UnknownEventType};

/// The `event_type` of a ping (S13).
pub const PING: &str = "PING";

const TIMESTAMP_FORMAT: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]+00:00");

/// Formats an instant as S11 wants it: ISO 8601, UTC, microseconds, `+00:00`,
/// e.g. `2015-02-13T18:57:55.066475+00:00`.
pub fn format_timestamp(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(TIMESTAMP_FORMAT)
        .expect("every UTC instant formats")
}

/// A `timestamp` that is not in S11's form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "timestamp {value:?} is not ISO 8601 UTC with microseconds and +00:00 (like 2015-02-13T18:57:55.066475+00:00)"
)]
pub struct TimestampError {
    /// The text that was given.
    pub value: String,
}

/// Parses a timestamp in exactly S11's form.
pub fn parse_timestamp(s: &str) -> Result<OffsetDateTime, TimestampError> {
    time::PrimitiveDateTime::parse(
        s,
        format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]+00:00"
        ),
    )
    .map(|t| t.assume_utc())
    .map_err(|_| TimestampError {
        value: s.to_owned(),
    })
}

/// Whether `s` is an ISO 8601 date and time with an offset or `Z` (X1's `timestamp`
/// override), e.g. `2015-02-13T18:57:55.066475+00:00`. Impossible dates (February 30)
/// are not.
pub fn is_iso8601_timestamp(s: &str) -> bool {
    OffsetDateTime::parse(s, &time::format_description::well_known::Iso8601::DEFAULT).is_ok()
}

/// A payload's body, serialised once. Cloning is cheap and shares the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Payload {
    bytes: Bytes,
}

impl Payload {
    /// Wraps bytes that are already a payload (a stored or received body).
    pub fn from_bytes(bytes: impl Into<Bytes>) -> Self {
        Payload {
            bytes: bytes.into(),
        }
    }

    /// The exact bytes that are POSTed.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The correlation key of X5.
    pub fn digest(&self) -> Digest {
        Digest::of(&self.bytes)
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(&self.bytes) {
            Ok(s) => f.debug_tuple("Payload").field(&s).finish(),
            Err(_) => f.debug_tuple("Payload").field(&self.bytes).finish(),
        }
    }
}

/// The first 16 hex digits of the SHA-256 of a body: identical on every retry of one
/// delivery, different between events (their timestamps differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 8]);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        let full = Sha256::digest(bytes);
        let mut short = [0u8; 8];
        short.copy_from_slice(&full[..8]);
        Digest(short)
    }

    /// The eight bytes (the first eight of the SHA-256).
    pub fn as_bytes(&self) -> &[u8; 8] {
        &self.0
    }

    /// Parses the 16 hex digits [`Digest`]'s `Display` prints.
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut out = [0u8; 8];
        for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
            let hex = std::str::from_utf8(chunk).ok()?;
            out[i] = u8::from_str_radix(hex, 16).ok()?;
        }
        Some(Digest(out))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).ok_or_else(|| serde::de::Error::custom("expected 16 hex digits"))
    }
}

/// An event before it is serialised: its type, its timestamp and its objects.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The event's type (or `PING`).
    pub event_type: String,
    /// The S11 timestamp text.
    pub timestamp: String,
    /// Every other top-level key, in order (`user`, `course`, …).
    pub data: Map<String, Value>,
}

/// An object that cannot be an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("an event must be a JSON object, got {0}")]
    NotAnObject(&'static str),
    #[error("the event has no \"event_type\" string")]
    MissingEventType,
    #[error(transparent)]
    UnknownType(#[from] UnknownEventType),
    #[error("invalid JSON: {0}")]
    Json(String),
}

impl Event {
    /// A new event of `event_type` at `at` carrying `data` (any `event_type` or
    /// `timestamp` key in `data` is replaced).
    pub fn new(event_type: EventType, at: OffsetDateTime, data: Map<String, Value>) -> Self {
        Event::raw(event_type.as_str(), at, data)
    }

    /// The ping of S13: `{"event_type": "PING", "timestamp": …}`.
    pub fn ping(at: OffsetDateTime) -> Self {
        Event::raw(PING, at, Map::new())
    }

    fn raw(event_type: &str, at: OffsetDateTime, mut data: Map<String, Value>) -> Self {
        data.shift_remove("event_type");
        data.shift_remove("timestamp");
        Event {
            event_type: event_type.to_owned(),
            timestamp: format_timestamp(at),
            data,
        }
    }

    /// The embedded fixture of `event_type`, re-stamped at `at`.
    pub fn fixture(event_type: EventType, at: OffsetDateTime) -> Self {
        let Value::Object(data) = crate::fixtures::value(event_type) else {
            unreachable!("fixtures are objects (tested)")
        };
        Event::new(event_type, at, data)
    }

    /// Reads an event from a JSON object (a fixture file, a journal body). The
    /// `event_type` must be one of S10's or `PING`; the timestamp is kept as given
    /// (empty when missing).
    pub fn from_value(value: Value) -> Result<Self, EventError> {
        let mut map = match value {
            Value::Object(m) => m,
            other => return Err(EventError::NotAnObject(json_kind(&other))),
        };
        let event_type = match map.shift_remove("event_type") {
            Some(Value::String(s)) => s,
            _ => return Err(EventError::MissingEventType),
        };
        if event_type != PING {
            event_type.parse::<EventType>()?;
        }
        let timestamp = match map.shift_remove("timestamp") {
            Some(Value::String(s)) => s,
            _ => String::new(),
        };
        Ok(Event {
            event_type,
            timestamp,
            data: map,
        })
    }

    /// Parses JSON text with [`Event::from_value`].
    pub fn from_json(text: &str) -> Result<Self, EventError> {
        let value = serde_json::from_str(text).map_err(|e| EventError::Json(e.to_string()))?;
        Event::from_value(value)
    }

    /// The same event with a new timestamp.
    pub fn restamped(mut self, at: OffsetDateTime) -> Self {
        self.timestamp = format_timestamp(at);
        self
    }

    /// The event as one flat JSON object, `event_type` and `timestamp` first.
    pub fn to_value(&self) -> Value {
        let mut map = Map::with_capacity(self.data.len() + 2);
        map.insert("event_type".into(), Value::String(self.event_type.clone()));
        map.insert("timestamp".into(), Value::String(self.timestamp.clone()));
        for (k, v) in &self.data {
            map.insert(k.clone(), v.clone());
        }
        Value::Object(map)
    }

    /// Serialises the event once: these bytes are sent on every attempt. The same
    /// bytes as serialising [`Event::to_value`], written without building it.
    pub fn to_payload(&self) -> Payload {
        /// The flat object of `to_value`, serialised from borrowed parts.
        struct Flat<'a>(&'a Event);
        impl Serialize for Flat<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeMap as _;
                let e = self.0;
                let mut map = s.serialize_map(Some(e.data.len() + 2))?;
                map.serialize_entry("event_type", &e.event_type)?;
                map.serialize_entry("timestamp", &e.timestamp)?;
                for (k, v) in &e.data {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
        let bytes = serde_json::to_vec(&Flat(self)).expect("a JSON value serialises");
        Payload::from_bytes(bytes)
    }

    /// Replaces top-level keys (X1: "any other top-level keys replacing the fixture's").
    /// `event_type` and `timestamp` in `overrides` are ignored.
    pub fn merge_top_level(&mut self, overrides: Map<String, Value>) {
        for (k, v) in overrides {
            if k != "event_type" && k != "timestamp" {
                self.data.insert(k, v);
            }
        }
    }

    /// Applies a `path=value` override such as `user.email=x@y` (see [`set_dotted`]).
    pub fn set(&mut self, assignment: &str) -> Result<(), SetError> {
        let (path, value) = parse_assignment(assignment)?;
        if path == "event_type" || path == "timestamp" {
            return Err(SetError::Reserved(path.to_owned()));
        }
        let mut root = Value::Object(std::mem::take(&mut self.data));
        let result = set_dotted(&mut root, path, value);
        let Value::Object(map) = root else {
            unreachable!("root stays an object")
        };
        self.data = map;
        result
    }
}

/// A `--set` override that cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    #[error("override {0:?} has no '=': write it as path=value, e.g. user.email=ada@example.com")]
    NoEquals(String),
    #[error("override path is empty or has an empty segment in {0:?}; write e.g. user.email")]
    EmptyPath(String),
    #[error("{0:?} is set by hookjar itself and cannot be overridden")]
    Reserved(String),
    #[error("cannot set {path:?}: {parent:?} is {kind}, not an object")]
    NotAnObject {
        path: String,
        parent: String,
        kind: &'static str,
    },
    #[error(
        "override {path:?}: {literal} is an integer beyond 64 bits, which hookjar cannot send exactly (it would become a float); quote it to send a string, e.g. {path}='\"{literal}\"'"
    )]
    WideInteger { path: String, literal: String },
}

/// Splits `path=value`; the value is read as JSON when it parses (`5`, `true`,
/// `null`, `{"a":1}`, `"quoted"`), otherwise taken as a string (`x@y.com`).
pub fn parse_assignment(assignment: &str) -> Result<(&str, Value), SetError> {
    let (path, raw) = assignment
        .split_once('=')
        .ok_or_else(|| SetError::NoEquals(assignment.to_owned()))?;
    let value = match serde_json::from_str(raw) {
        Ok(value) => value,
        Err(_) => return Ok((path.trim(), Value::String(raw.to_owned()))),
    };
    if let Some(literal) = wide_integer(raw) {
        return Err(SetError::WideInteger {
            path: path.trim().to_owned(),
            literal: literal.to_owned(),
        });
    }
    Ok((path.trim(), value))
}

/// The first integer literal in the JSON text `json` that does not fit 64 bits
/// (below `i64::MIN` or above `u64::MAX`), if any. serde_json (without its
/// `arbitrary_precision` feature) reads such a literal as the nearest float, so a
/// payload holding one would be sent altered; callers refuse it instead. `json`
/// must be valid JSON (outside strings, every `-` or digit then starts a number).
pub fn wide_integer(json: &str) -> Option<&str> {
    let b = json.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() {
                    match b[i] {
                        b'\\' => i += 2,
                        b'"' => {
                            i += 1;
                            break;
                        }
                        _ => i += 1,
                    }
                }
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                let integer = &json[start..i];
                let fraction_or_exponent = matches!(b.get(i), Some(b'.' | b'e' | b'E'));
                while i < b.len() && matches!(b[i], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                {
                    i += 1;
                }
                if !fraction_or_exponent
                    && integer.parse::<u64>().is_err()
                    && integer.parse::<i64>().is_err()
                {
                    return Some(integer);
                }
            }
            _ => i += 1,
        }
    }
    None
}

/// Sets `value` at the dotted `path` inside `root`, creating objects on the way.
pub fn set_dotted(root: &mut Value, path: &str, value: Value) -> Result<(), SetError> {
    if path.is_empty() || path.split('.').any(str::is_empty) {
        return Err(SetError::EmptyPath(path.to_owned()));
    }
    let segments: Vec<&str> = path.split('.').collect();
    let mut cur = root;
    for (i, seg) in segments.iter().enumerate() {
        let map = match cur {
            Value::Object(m) => m,
            other => {
                return Err(SetError::NotAnObject {
                    path: path.to_owned(),
                    parent: segments[..i].join("."),
                    kind: json_kind(other),
                });
            }
        };
        if i == segments.len() - 1 {
            map.insert((*seg).to_owned(), value);
            return Ok(());
        }
        cur = map
            .entry((*seg).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    unreachable!("the loop returns on the last segment")
}

/// `an object`, `a string`, … for messages.
pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// What a receiver sees in a body, checked against S7 and S11.
#[derive(Debug, Clone, PartialEq)]
pub struct BodyReport {
    /// The parsed body, when it is JSON.
    pub json: Option<Value>,
    /// Its `event_type`, when it has a string one.
    pub event_type: Option<String>,
    /// Every way it departs from S7/S11, each naming its clause.
    pub problems: Vec<String>,
}

/// Parses a body once and lists how it departs from S7/S11: not JSON, not one object,
/// no or unknown `event_type`, no or malformed `timestamp`.
pub fn inspect_body(body: &[u8]) -> BodyReport {
    let mut problems = Vec::new();
    let json: Option<Value> = match serde_json::from_slice(body) {
        Ok(v) => Some(v),
        Err(e) => {
            problems.push(format!("S7 body: not JSON ({e})"));
            None
        }
    };
    let mut event_type = None;
    match &json {
        Some(Value::Object(map)) => {
            match map.get("event_type") {
                Some(Value::String(t)) => {
                    event_type = Some(t.clone());
                    if t != PING && t.parse::<EventType>().is_err() {
                        problems.push(format!(
                            "S10 event_type: {t:?} is not one of {} or PING",
                            EventType::valid_names()
                        ));
                    }
                }
                Some(other) => problems.push(format!(
                    "S11 event_type: expected a string, got {}",
                    json_kind(other)
                )),
                None => problems.push("S11 event_type: missing".to_owned()),
            }
            match map.get("timestamp") {
                Some(Value::String(ts)) => {
                    if let Err(e) = parse_timestamp(ts) {
                        problems.push(format!("S11 timestamp: {e}"));
                    }
                }
                Some(other) => problems.push(format!(
                    "S11 timestamp: expected a string, got {}",
                    json_kind(other)
                )),
                None => problems.push("S11 timestamp: missing".to_owned()),
            }
        }
        Some(other) => problems.push(format!(
            "S7 body: expected one JSON object, got {}",
            json_kind(other)
        )),
        None => {}
    }
    BodyReport {
        json,
        event_type,
        problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    /// A JSON text with integer literals of any width (up to 128 bits), floats and
    /// strings full of digits, and whether it holds an integer beyond 64 bits.
    fn json_with_integers() -> impl Strategy<Value = (String, bool)> {
        let leaf = prop_oneof![
            any::<i128>().prop_map(|n| {
                let wide = i64::try_from(n).is_err() && u64::try_from(n).is_err();
                (n.to_string(), wide)
            }),
            any::<i64>().prop_map(|n| (n.to_string(), false)),
            (any::<i128>(), 0u32..1000).prop_map(|(n, f)| (format!("{n}.{f}"), false)),
            (any::<i128>(), -30i32..30).prop_map(|(n, e)| (format!("{n}e{e}"), false)),
            "[0-9\\-\\\\\"a-z ]{0,30}".prop_map(|s| (serde_json::to_string(&s).unwrap(), false)),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(|items| {
                    let wide = items.iter().any(|(_, w)| *w);
                    let texts: Vec<String> = items.into_iter().map(|(t, _)| t).collect();
                    (format!("[{}]", texts.join(",")), wide)
                }),
                prop::collection::vec(("[a-z0-9]{1,8}", inner), 0..6).prop_map(|fields| {
                    let wide = fields.iter().any(|(_, (_, w))| *w);
                    let texts: Vec<String> = fields
                        .into_iter()
                        .map(|(k, (t, _))| format!("{}: {t}", serde_json::to_string(&k).unwrap()))
                        .collect();
                    (format!("{{{}}}", texts.join(", ")), wide)
                }),
            ]
        })
    }

    proptest! {
        /// Exactly the texts with an integer literal beyond 64 bits are found, and
        /// those are the texts serde_json would not read back exactly.
        #[test]
        fn wide_integers_are_found_in_any_json((text, wide) in json_with_integers()) {
            let value: Value = serde_json::from_str(&text).expect("the strategy writes JSON");
            prop_assert_eq!(wide_integer(&text).is_some(), wide, "{}", text);
            if let Some(literal) = wide_integer(&text) {
                prop_assert!(literal.parse::<i128>().is_ok(), "{}", literal);
            }
            let _ = value;
        }
    }

    #[test]
    fn wide_integers_in_overrides_are_refused_with_a_way_out() {
        let err = parse_assignment("user.id=123456789012345678901234567890").unwrap_err();
        assert!(matches!(err, SetError::WideInteger { .. }));
        let message = err.to_string();
        assert!(
            message.contains("beyond 64 bits") && message.contains("quote it"),
            "{message}"
        );
        // Quoted, it is a string; within 64 bits, a number as before.
        let (_, v) = parse_assignment("user.id=\"123456789012345678901234567890\"").unwrap();
        assert_eq!(v, Value::String("123456789012345678901234567890".into()));
        let (_, v) = parse_assignment("n=18446744073709551615").unwrap();
        assert_eq!(v, serde_json::json!(u64::MAX));
        let (_, v) = parse_assignment("n=-9223372036854775808").unwrap();
        assert_eq!(v, serde_json::json!(i64::MIN));
        assert!(parse_assignment("n=18446744073709551616").is_err());
        assert!(parse_assignment("n=-9223372036854775809").is_err());
        // Floats stay floats.
        let (_, v) = parse_assignment("n=1e30").unwrap();
        assert_eq!(v, serde_json::json!(1e30));
    }

    #[test]
    fn x1_timestamp_overrides_are_iso_8601() {
        for ok in [
            "2015-02-13T18:57:55.066475+00:00",
            "2015-02-13T18:57:55Z",
            "2015-02-13T18:57:55+02:00",
        ] {
            assert!(is_iso8601_timestamp(ok), "{ok}");
        }
        for bad in ["yesterday", "2015-02-30T00:00:00Z", "2015-02-13", ""] {
            assert!(!is_iso8601_timestamp(bad), "{bad}");
        }
    }

    #[test]
    fn timestamps_have_microseconds_and_utc_offset() {
        let t = datetime!(2015-02-13 18:57:55.066475 UTC);
        assert_eq!(format_timestamp(t), "2015-02-13T18:57:55.066475+00:00");
        let t = datetime!(2026-01-01 00:00:00 +02:00);
        assert_eq!(format_timestamp(t), "2025-12-31T22:00:00.000000+00:00");
        assert_eq!(
            parse_timestamp("2015-02-13T18:57:55.066475+00:00").unwrap(),
            datetime!(2015-02-13 18:57:55.066475 UTC)
        );
        for bad in [
            "2015-02-13T18:57:55Z",
            "2015-02-13T18:57:55.066+00:00",
            "2015-02-13 18:57:55.066475+00:00",
            "2015-02-13T18:57:55.066475+01:00",
        ] {
            assert!(parse_timestamp(bad).is_err(), "{bad}");
        }
    }

    /// `to_payload` writes exactly the bytes of `to_value`, for every fixture (parsed
    /// once and cloned) and with overrides merged in.
    #[test]
    fn payload_bytes_are_those_of_the_value() {
        let at = datetime!(2026-11-27 10:00:00.5 UTC);
        for t in EventType::ALL {
            let mut e = Event::fixture(t, at);
            assert_eq!(
                e.to_payload().bytes().as_ref(),
                serde_json::to_vec(&e.to_value()).unwrap(),
                "{t}"
            );
            let mut overrides = Map::new();
            overrides.insert("user".into(), serde_json::json!({"email": "x\"y@z"}));
            overrides.insert("extra".into(), serde_json::json!([1, 2.5, null]));
            e.merge_top_level(overrides);
            assert_eq!(
                e.to_payload().bytes().as_ref(),
                serde_json::to_vec(&e.to_value()).unwrap(),
                "{t} with overrides"
            );
            assert_eq!(
                Event::fixture(t, at).data,
                fresh_fixture_data(t),
                "{t}: the cache is not changed by a caller"
            );
        }
    }

    fn fresh_fixture_data(t: EventType) -> Map<String, Value> {
        let Value::Object(mut map) = serde_json::from_str(crate::fixtures::text(t)).unwrap() else {
            unreachable!()
        };
        map.shift_remove("event_type");
        map.shift_remove("timestamp");
        map
    }

    #[test]
    fn payload_is_flat_with_type_and_timestamp_first() {
        let at = datetime!(2026-11-27 10:00:00.5 UTC);
        let e = Event::fixture(EventType::CourseEnrollment, at);
        let text = String::from_utf8(e.to_payload().bytes().to_vec()).unwrap();
        assert!(
            text.starts_with(
                r#"{"event_type":"COURSE_ENROLLMENT","timestamp":"2026-11-27T10:00:00.500000+00:00","user":"#
            ),
            "{text}"
        );
        let ping = Event::ping(at).to_payload();
        assert_eq!(
            ping.bytes().as_ref(),
            br#"{"event_type":"PING","timestamp":"2026-11-27T10:00:00.500000+00:00"}"#
        );
    }

    #[test]
    fn digest_is_stable_and_parses() {
        let p = Payload::from_bytes(&b"{}"[..]);
        let d = p.digest();
        assert_eq!(d.to_string(), "44136fa355b3678a");
        assert_eq!(Digest::parse(&d.to_string()), Some(d));
        assert_eq!(Digest::parse("xyz"), None);
    }

    #[test]
    fn dotted_overrides() {
        let mut e = Event::fixture(EventType::CourseEnrollment, datetime!(2026-01-01 0:00 UTC));
        e.set("user.email=ada@example.com").unwrap();
        e.set("course.id=42").unwrap();
        e.set("extra.deep.flag=true").unwrap();
        let v = e.to_value();
        assert_eq!(v["user"]["email"], "ada@example.com");
        assert_eq!(v["course"]["id"], 42);
        assert_eq!(v["extra"]["deep"]["flag"], true);
        assert_eq!(
            e.set("user.email.x=1").unwrap_err().to_string(),
            "cannot set \"user.email.x\": \"user.email\" is a string, not an object"
        );
        assert!(matches!(e.set("nope"), Err(SetError::NoEquals(_))));
        assert!(matches!(e.set("a..b=1"), Err(SetError::EmptyPath(_))));
        assert!(matches!(e.set("timestamp=1"), Err(SetError::Reserved(_))));
    }

    #[test]
    fn inspect_names_the_clause() {
        let r = inspect_body(br#"[1]"#);
        assert_eq!(
            r.problems,
            vec!["S7 body: expected one JSON object, got a list"]
        );
        let r = inspect_body(br#"{"event_type":"NOPE","timestamp":"2015-02-13T18:57:55Z"}"#);
        assert_eq!(r.problems.len(), 2);
        assert!(r.problems[0].starts_with("S10 event_type: \"NOPE\""));
        assert!(r.problems[1].starts_with("S11 timestamp:"));
        let ok = Event::ping(datetime!(2026-01-01 0:00 UTC)).to_payload();
        assert!(inspect_body(ok.bytes()).problems.is_empty());
    }
}
