//! Property tests of the mock script language: `parse(display(s)) == s` for every
//! script, and the parser never panics, whatever the text.

use std::time::Duration;

use hookjar_core::script::{Action, MAX_REPEAT, Script, Step};
use proptest::prelude::*;

fn target() -> impl Strategy<Value = String> {
    prop_oneof![
        "/[a-zA-Z0-9_./?=&%-]{0,20}",
        "\\.\\.?/[a-zA-Z0-9_./?=&%-]{0,20}",
        "https?://[a-z]{1,10}(\\.[a-z]{2,3})?(:[0-9]{2,5})?/[a-z0-9/]{0,10}",
    ]
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        (200u16..=599).prop_map(Action::Status),
        (200u16..=599, any::<u32>())
            .prop_map(|(code, seconds)| Action::RetryAfter { code, seconds }),
        Just(Action::Reset),
        Just(Action::Hang),
        Just(Action::Garbage),
        proptest::option::of(target()).prop_map(Action::Redirect),
        (prop::sample::select(vec![301u16, 302, 303, 308]), target())
            .prop_map(|(code, target)| Action::RedirectTo { code, target }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let delay = prop_oneof![
        Just(Duration::ZERO),
        (0u64..=86_400_000).prop_map(Duration::from_millis),
        (0u64..=86_400).prop_map(Duration::from_secs),
    ];
    let repeat = prop_oneof![Just(1u32), 1u32..=10, 1u32..=MAX_REPEAT];
    (action(), delay, repeat).prop_map(|(action, delay, repeat)| Step {
        action,
        delay,
        repeat,
    })
}

fn script() -> impl Strategy<Value = Script> {
    proptest::collection::vec(step(), 1..8)
        .prop_map(|steps| Script::new(steps).expect("strategy stays in bounds"))
}

proptest! {
    #[test]
    fn display_round_trips(s in script()) {
        let text = s.to_string();
        let back = Script::parse(&text);
        prop_assert_eq!(back.as_ref(), Ok(&s), "text: {}", text);
        // Parsing is insensitive to spaces around steps.
        let spaced = text.replace(',', " , ");
        prop_assert_eq!(Script::parse(&format!(" {spaced} ")), Ok(s));
    }

    #[test]
    fn never_panics_on_any_text(text in "\\PC{0,40}") {
        match Script::parse(&text) {
            Ok(s) => {
                // Whatever parses prints to text that parses to the same script.
                prop_assert_eq!(Script::parse(&s.to_string()), Ok(s));
            }
            Err(e) => {
                prop_assert!(e.offset <= text.len());
                prop_assert!(text.is_char_boundary(e.offset));
                prop_assert!(text[e.offset..].starts_with(&e.token));
                prop_assert_eq!(e.column, text[..e.offset].chars().count() + 1);
                let _ = e.snippet();
            }
        }
    }

    #[test]
    fn never_panics_on_script_like_text(text in "[0-9a-z@*=,/ .:+-]{0,30}") {
        if let Err(e) = Script::parse(&text) {
            prop_assert!(text[e.offset..].starts_with(&e.token), "{e}");
        }
    }
}
