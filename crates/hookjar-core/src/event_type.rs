//! The ten event types of S10, with their wire names and the kebab names of S6b.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One of the ten Skilljar webhook event types (S10).
///
/// The wire name (`COURSE_ENROLLMENT`) is what payloads and the management API carry;
/// the kebab name (`course-enrollment`) names the `sample-*` endpoints of S6b.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    DomainEnrollment,
    CourseEnrollment,
    CourseCompletion,
    LessonCompletion,
    PathEnrollment,
    PathCompletion,
    QuizCompletion,
    PurchaseFulfillment,
    ViltEventRegistration,
    DashboardTaskCreated,
}

impl EventType {
    /// Every event type, in the order of S10.
    pub const ALL: [EventType; 10] = [
        EventType::DomainEnrollment,
        EventType::CourseEnrollment,
        EventType::CourseCompletion,
        EventType::LessonCompletion,
        EventType::PathEnrollment,
        EventType::PathCompletion,
        EventType::QuizCompletion,
        EventType::PurchaseFulfillment,
        EventType::ViltEventRegistration,
        EventType::DashboardTaskCreated,
    ];

    /// The exact wire string, e.g. `COURSE_ENROLLMENT`.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventType::DomainEnrollment => "DOMAIN_ENROLLMENT",
            EventType::CourseEnrollment => "COURSE_ENROLLMENT",
            EventType::CourseCompletion => "COURSE_COMPLETION",
            EventType::LessonCompletion => "LESSON_COMPLETION",
            EventType::PathEnrollment => "PATH_ENROLLMENT",
            EventType::PathCompletion => "PATH_COMPLETION",
            EventType::QuizCompletion => "QUIZ_COMPLETION",
            EventType::PurchaseFulfillment => "PURCHASE_FULFILLMENT",
            EventType::ViltEventRegistration => "VILT_EVENT_REGISTRATION",
            EventType::DashboardTaskCreated => "DASHBOARD_TASK_CREATED",
        }
    }

    /// The kebab name used by S6b's sample endpoints, e.g. `course-enrollment`.
    ///
    /// Skilljar names the VILT sample `sample-vilt-registration`, so its kebab name
    /// drops `event`.
    pub const fn kebab(self) -> &'static str {
        match self {
            EventType::DomainEnrollment => "domain-enrollment",
            EventType::CourseEnrollment => "course-enrollment",
            EventType::CourseCompletion => "course-completion",
            EventType::LessonCompletion => "lesson-completion",
            EventType::PathEnrollment => "path-enrollment",
            EventType::PathCompletion => "path-completion",
            EventType::QuizCompletion => "quiz-completion",
            EventType::PurchaseFulfillment => "purchase-fulfillment",
            EventType::ViltEventRegistration => "vilt-registration",
            EventType::DashboardTaskCreated => "dashboard-task-created",
        }
    }

    /// Looks a type up by its kebab name (S6b).
    pub fn from_kebab(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.kebab() == name)
    }

    /// What triggers the event, in the seed's words.
    pub const fn description(self) -> &'static str {
        match self {
            EventType::DomainEnrollment => "Learner creates an account on a training domain",
            EventType::CourseEnrollment => "Learner enrolls (or is enrolled) into a course",
            EventType::CourseCompletion => "Course is marked complete",
            EventType::LessonCompletion => "Lesson is marked complete",
            EventType::PathEnrollment => "Learner enrolls (or is enrolled) into a Path",
            EventType::PathCompletion => "Path is marked complete",
            EventType::QuizCompletion => "Quiz attempt is completed",
            EventType::PurchaseFulfillment => "Purchase event is fulfilled/completed",
            EventType::ViltEventRegistration => "Learner registers for a VILT (live) event",
            EventType::DashboardTaskCreated => {
                "A task has been created that requires a review on the dashboard"
            }
        }
    }

    /// The valid wire names joined for an error message.
    pub fn valid_names() -> String {
        EventType::ALL
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event type name that is not one of S10's ten.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown event type {name:?}: expected one of {}",
    EventType::valid_names()
)]
pub struct UnknownEventType {
    /// The name that was given.
    pub name: String,
}

impl FromStr for EventType {
    type Err = UnknownEventType;

    /// Parses the exact wire name (`COURSE_ENROLLMENT`). The kebab name
    /// (`course-enrollment`) is accepted too, as a convenience for the CLI.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .or_else(|| EventType::from_kebab(s))
            .ok_or_else(|| UnknownEventType { name: s.to_owned() })
    }
}

impl Serialize for EventType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| serde::de::Error::custom(UnknownEventType { name: s }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>().unwrap(), t);
            assert_eq!(t.kebab().parse::<EventType>().unwrap(), t);
            assert_eq!(EventType::from_kebab(t.kebab()), Some(t));
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.as_str()));
            assert_eq!(serde_json::from_str::<EventType>(&json).unwrap(), t);
        }
    }

    #[test]
    fn unknown_name_lists_valid_ones() {
        let err = "COURSE_STARTED".parse::<EventType>().unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("unknown event type \"COURSE_STARTED\": expected one of DOMAIN_ENROLLMENT, COURSE_ENROLLMENT"), "{msg}");
        assert!(msg.ends_with("DASHBOARD_TASK_CREATED"), "{msg}");
    }

    #[test]
    fn serde_is_strict_about_wire_names() {
        assert!(serde_json::from_str::<EventType>("\"course-enrollment\"").is_err());
        assert!(serde_json::from_str::<EventType>("\"course_enrollment\"").is_err());
    }
}
