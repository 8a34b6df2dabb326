//! Shared helpers for the cross-crate suites in the top-level `tests/` folder.
//!
//! # Layout
//! - [`snapshot_settings`] — insta settings: snapshots live in the top-level
//!   `snapshots/` folder, with one set of redactions.
//! - [`redact`] — the one redaction helper for text: timestamps, durations, ports.

use std::path::PathBuf;

/// The top-level `snapshots/` folder.
pub fn snapshot_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../snapshots"))
}

/// insta settings shared by every suite: the top-level snapshot folder, no module
/// prefix, and JSON redactions for timestamps.
pub fn snapshot_settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path(snapshot_dir());
    s.set_prepend_module_to_snapshot(false);
    s.add_redaction(".timestamp", "[timestamp]");
    for (re, with) in TEXT_FILTERS {
        s.add_filter(re, *with);
    }
    s
}

/// [`snapshot_settings`] plus a redaction of random ids, for reports that quote API
/// answers (fixture payloads keep their fixed ids, so they use the plain settings).
pub fn report_settings() -> insta::Settings {
    let mut s = snapshot_settings();
    // Webhook, event and delivery ids: 13 random base-36 characters (S3).
    s.add_filter(r#""[0-9a-z]{13}""#, "\"[id]\"");
    s
}

/// Regexes and replacements applied to snapshot text.
pub const TEXT_FILTERS: &[(&str, &str)] = &[
    (
        r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+00:00",
        "[timestamp]",
    ),
    (r"127\.0\.0\.1:\d+", "127.0.0.1:[port]"),
    (r"\b\d+(\.\d+)?ms\b", "[ms]"),
    (r"slowest \[ms\] \([^)]+\)", "slowest [ms] ([case])"),
];

/// Applies [`TEXT_FILTERS`] to a string (for assertions outside insta).
pub fn redact(text: &str) -> String {
    let mut out = text.to_owned();
    for (re, with) in TEXT_FILTERS {
        out = regex_lite::Regex::new(re)
            .expect("valid regex")
            .replace_all(&out, *with)
            .into_owned();
    }
    out
}

/// The head and body of an HTTP/1.1 request read so far, once the body holds every
/// byte its `Content-Length` announces (none: no body); `None` while more must be
/// read. For the suites' hand-written receivers, which read a connection in chunks.
pub fn complete_request(buf: &[u8]) -> Option<(String, String)> {
    let text = String::from_utf8_lossy(buf);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    (body.len() >= len).then(|| (head.to_owned(), body.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::complete_request;

    #[test]
    fn a_request_is_complete_when_its_body_is() {
        assert_eq!(
            complete_request(b"POST / HTTP/1.1\r\ncontent-length: 4\r\n"),
            None
        );
        assert_eq!(
            complete_request(b"POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nab"),
            None
        );
        assert_eq!(
            complete_request(b"POST /x HTTP/1.1\r\ncontent-length: 4\r\n\r\nabcd"),
            Some((
                "POST /x HTTP/1.1\r\ncontent-length: 4".into(),
                "abcd".into()
            ))
        );
        assert_eq!(
            complete_request(b"GET / HTTP/1.1\r\n\r\n"),
            Some(("GET / HTTP/1.1".into(), String::new()))
        );
    }
}
