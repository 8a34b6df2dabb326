//! The exact HTTP request of one delivery attempt (S7–S9), as plain data.
//!
//! The dispatcher, `hookjar send` and `hookjar check` all build their requests here,
//! so the headers are decided in exactly one place.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::payload::Payload;
use crate::webhook::{Headers, Webhook};

/// `Content-Type` of every delivery (S7).
pub const CONTENT_TYPE: &str = "application/json";
/// `User-Agent` of every delivery (S7).
pub const USER_AGENT: &str = "skilljar";

/// One POST: URL, headers in the order they are sent, body bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRequest {
    /// Where it goes.
    pub url: String,
    /// `Content-Type`, `User-Agent`, `Authorization` when set, then each additional
    /// header (S7–S9).
    pub headers: Vec<(String, String)>,
    /// The payload bytes, identical on every retry (X5).
    pub body: Payload,
}

impl DeliveryRequest {
    /// Always `POST` (S7).
    pub const METHOD: &'static str = "POST";

    /// The request for `url` with Basic auth from `username`/`password` (S8) and
    /// `additional` headers (S9).
    pub fn new(
        url: impl Into<String>,
        username: &str,
        password: &str,
        additional: &Headers,
        body: Payload,
    ) -> Self {
        let mut headers = vec![
            ("Content-Type".to_owned(), CONTENT_TYPE.to_owned()),
            ("User-Agent".to_owned(), USER_AGENT.to_owned()),
        ];
        if let Some(auth) = basic_auth_header(username, password) {
            headers.push(("Authorization".to_owned(), auth));
        }
        headers.extend(additional.iter().map(|(k, v)| (k.clone(), v.clone())));
        DeliveryRequest {
            url: url.into(),
            headers,
            body,
        }
    }

    /// The request a webhook gets for `body`.
    pub fn for_webhook(webhook: &Webhook, body: Payload) -> Self {
        DeliveryRequest::new(
            webhook.target_url.clone(),
            &webhook.basic_auth_username,
            &webhook.basic_auth_password,
            &webhook.additional_headers,
            body,
        )
    }

    /// The value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The headers as an [`http::HeaderMap`], for an HTTP client. Header names and
    /// values were validated when the webhook was stored (S6).
    pub fn header_map(&self) -> Result<http::HeaderMap, InvalidHeader> {
        let mut map = http::HeaderMap::with_capacity(self.headers.len());
        for (k, v) in &self.headers {
            let name = http::HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| InvalidHeader { name: k.clone() })?;
            let value = http::HeaderValue::from_bytes(v.as_bytes())
                .map_err(|_| InvalidHeader { name: k.clone() })?;
            map.append(name, value);
        }
        Ok(map)
    }
}

/// A header that HTTP cannot carry (only possible for unvalidated input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("header {name:?} cannot be sent over HTTP; fix the webhook's additional_headers")]
pub struct InvalidHeader {
    /// The header's name.
    pub name: String,
}

/// `Basic base64(username:password)` when either half is non-empty (S8), else `None`.
pub fn basic_auth_header(username: &str, password: &str) -> Option<String> {
    if username.is_empty() && password.is_empty() {
        return None;
    }
    Some(format!(
        "Basic {}",
        STANDARD.encode(format!("{username}:{password}"))
    ))
}

/// Reads `Basic …` back into `(username, password)`; `None` if it is not Basic auth
/// or not valid base64/UTF-8.
pub fn decode_basic_auth(value: &str) -> Option<(String, String)> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = STANDARD.decode(rest.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_in_order() {
        let mut extra = Headers::new();
        extra.insert("client_id".into(), "examplestring2".into());
        extra.insert("x-my-new-header".into(), "string".into());
        let r = DeliveryRequest::new(
            "https://example.com/h",
            "customer_username_input",
            "customer_password_input",
            &extra,
            Payload::from_bytes(&b"{}"[..]),
        );
        let names: Vec<&str> = r.headers.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "Content-Type",
                "User-Agent",
                "Authorization",
                "client_id",
                "x-my-new-header"
            ]
        );
        assert_eq!(
            r.header("authorization"),
            Some("Basic Y3VzdG9tZXJfdXNlcm5hbWVfaW5wdXQ6Y3VzdG9tZXJfcGFzc3dvcmRfaW5wdXQ=")
        );
        assert_eq!(r.header_map().unwrap().len(), 5);
    }

    #[test]
    fn basic_auth_halves() {
        assert_eq!(basic_auth_header("", ""), None);
        assert_eq!(basic_auth_header("u", "").as_deref(), Some("Basic dTo="));
        assert_eq!(basic_auth_header("", "p").as_deref(), Some("Basic OnA="));
        assert_eq!(
            decode_basic_auth("Basic dTpwOnE="),
            Some(("u".to_owned(), "p:q".to_owned()))
        );
        assert_eq!(decode_basic_auth("Bearer x"), None);
    }
}

/// Whether a redirect from `from` to `to` drops the `Authorization` header (S18),
/// by the rule of Python's `requests` (`Session.should_strip_auth`), which Skilljar
/// uses: kept on the same scheme, host and port; dropped when the host changes;
/// kept from `http` to `https` on the default ports (`http://h/…` → `https://h/…`,
/// the common move to TLS); otherwise dropped when the scheme or the port changes.
/// Ports are compared as given, a port equal to the scheme's default counting as
/// none (the `url` crate already reads `http://h:80` as `http://h`).
pub fn redirect_strips_auth(from: &url::Url, to: &url::Url) -> bool {
    if from.host_str().map(str::to_ascii_lowercase) != to.host_str().map(str::to_ascii_lowercase) {
        return true;
    }
    let (from_port, to_port) = (from.port(), to.port());
    if from.scheme() == "http" && from_port.is_none() && to.scheme() == "https" && to_port.is_none()
    {
        return false;
    }
    from.scheme() != to.scheme() || from_port != to_port
}

#[cfg(test)]
mod redirect_tests {
    use super::redirect_strips_auth;
    use proptest::prelude::*;

    fn strips(from: &str, to: &str) -> bool {
        redirect_strips_auth(
            &url::Url::parse(from).unwrap(),
            &url::Url::parse(to).unwrap(),
        )
    }

    /// The cases of `requests`' own tests (`test_should_strip_auth_*`) and the
    /// common ones around them.
    #[test]
    fn follows_the_rule_of_pythons_requests() {
        let cases = [
            ("http://example.com/a", "http://example.com/b", false),
            ("http://example.com/a", "https://example.com/a", false),
            (
                "http://example.com:80/a",
                "https://example.com:443/a",
                false,
            ),
            ("http://example.com/a", "https://example.com:443/a", false),
            ("http://Example.com/a", "http://example.COM/b", false),
            ("https://example.com/a", "http://example.com/a", true),
            ("http://example.com/a", "http://other.example.com/a", true),
            ("http://example.com/a", "https://other.example.com/a", true),
            (
                "http://example.com:8080/a",
                "https://example.com:8443/a",
                true,
            ),
            ("http://example.com:8080/a", "https://example.com/a", true),
            ("http://example.com/a", "https://example.com:8443/a", true),
            (
                "http://example.com:8080/a",
                "http://example.com:8080/b",
                false,
            ),
            (
                "http://example.com:8080/a",
                "http://example.com:9090/a",
                true,
            ),
            ("http://example.com/a", "http://example.com:8080/a", true),
            ("https://example.com/a", "https://example.com:443/b", false),
            ("http://127.0.0.1:8000/a", "http://localhost:8000/a", true),
        ];
        for (from, to, want) in cases {
            assert_eq!(strips(from, to), want, "{from} → {to}");
        }
    }

    proptest! {
        /// Whatever the URLs: a hop to another host always drops the credentials,
        /// and a hop within one scheme, host and port never does.
        #[test]
        fn other_hosts_always_lose_auth_and_the_same_origin_never(
            scheme in prop::sample::select(vec!["http", "https"]),
            to_scheme in prop::sample::select(vec!["http", "https"]),
            host in "[a-z]{1,8}\\.example",
            other in "[a-z]{1,8}\\.test",
            port in prop::option::of(1u16..),
            to_port in prop::option::of(1u16..),
            path in "/[a-z]{0,8}",
        ) {
            let at = |s: &str, h: &str, p: Option<u16>| match p {
                Some(p) => format!("{s}://{h}:{p}{path}"),
                None => format!("{s}://{h}{path}"),
            };
            prop_assert!(strips(&at(scheme, &host, port), &at(to_scheme, &other, to_port)));
            prop_assert!(!strips(&at(scheme, &host, port), &at(scheme, &host, port)));
        }
    }
}
