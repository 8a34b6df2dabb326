//! The fixture payloads of `fixtures/events/`, embedded so the binary works anywhere.
//!
//! One realistic payload per event type plus `PING`. `fixtures/README.md` says which
//! fields are confirmed by Skilljar's documents and which are modelled.

use serde_json::Value;

use crate::event_type::EventType;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("../../../fixtures/events/", $name, ".json"))
    };
}

/// The fixture text of `event_type`, exactly as stored in `fixtures/events/`.
pub const fn text(event_type: EventType) -> &'static str {
    match event_type {
        EventType::DomainEnrollment => fixture!("DOMAIN_ENROLLMENT"),
        EventType::CourseEnrollment => fixture!("COURSE_ENROLLMENT"),
        EventType::CourseCompletion => fixture!("COURSE_COMPLETION"),
        EventType::LessonCompletion => fixture!("LESSON_COMPLETION"),
        EventType::PathEnrollment => fixture!("PATH_ENROLLMENT"),
        EventType::PathCompletion => fixture!("PATH_COMPLETION"),
        EventType::QuizCompletion => fixture!("QUIZ_COMPLETION"),
        EventType::PurchaseFulfillment => fixture!("PURCHASE_FULFILLMENT"),
        EventType::ViltEventRegistration => fixture!("VILT_EVENT_REGISTRATION"),
        EventType::DashboardTaskCreated => fixture!("DASHBOARD_TASK_CREATED"),
    }
}

/// The ping fixture (S13).
pub const PING_TEXT: &str = fixture!("PING");

/// The fixture of `event_type`, parsed (once per process; each call clones it).
pub fn value(event_type: EventType) -> Value {
    static PARSED: std::sync::LazyLock<Vec<Value>> = std::sync::LazyLock::new(|| {
        EventType::ALL
            .iter()
            .map(|t| {
                serde_json::from_str(text(*t)).expect("embedded fixtures are valid JSON (tested)")
            })
            .collect()
    });
    let at = EventType::ALL
        .iter()
        .position(|t| *t == event_type)
        .expect("ALL lists every event type");
    PARSED[at].clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::inspect_body;

    #[test]
    fn every_fixture_parses_and_carries_its_type() {
        for t in EventType::ALL {
            let v = value(t);
            assert_eq!(v["event_type"], t.as_str(), "{t}");
            let report = inspect_body(text(t).as_bytes());
            assert!(report.problems.is_empty(), "{t}: {:?}", report.problems);
            assert!(v["user"].is_object(), "{t} has a user");
        }
        let ping: Value = serde_json::from_str(PING_TEXT).unwrap();
        assert_eq!(ping["event_type"], "PING");
        assert!(inspect_body(PING_TEXT.as_bytes()).problems.is_empty());
    }

    #[test]
    fn course_enrollment_has_the_published_shape() {
        let v = value(EventType::CourseEnrollment);
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "event_type",
                "timestamp",
                "user",
                "course",
                "domain",
                "purchase",
                "domain_access_code"
            ]
        );
        let sub = |k: &str| -> Vec<String> { v[k].as_object().unwrap().keys().cloned().collect() };
        assert_eq!(sub("user"), ["id", "email", "first_name", "last_name"]);
        assert_eq!(sub("course"), ["id", "published_course_id", "title", "url"]);
        assert_eq!(sub("domain"), ["id", "name"]);
        assert_eq!(
            sub("purchase"),
            [
                "order_id",
                "original_price",
                "purchase_price",
                "currency_code",
                "payment_processor"
            ]
        );
    }
}
