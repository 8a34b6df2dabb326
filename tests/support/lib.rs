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
