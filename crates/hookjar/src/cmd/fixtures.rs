//! `hookjar fixtures`: the embedded fixture payloads.

use std::process::ExitCode;

use hookjar_core::{EventType, fixtures};

/// The fixture payloads hookjar sends: one per event type, plus PING.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List the ten event types, with their sample-endpoint names and what triggers them.
    List,
    /// Print one fixture payload as JSON, exactly as stored (e.g. COURSE_ENROLLMENT,
    /// course-enrollment or PING).
    Show {
        /// The event type: a wire name (COURSE_ENROLLMENT), a kebab name
        /// (course-enrollment) or PING.
        #[arg(value_name = "TYPE")]
        event_type: String,
    },
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::List => print!("{}", list()),
        Command::Show { event_type } => print!("{}", show(&event_type)?),
    }
    Ok(ExitCode::SUCCESS)
}

/// The table `fixtures list` prints.
pub fn list() -> String {
    let mut out = String::new();
    for t in EventType::ALL {
        out.push_str(&format!(
            "{:<24} {:<24} {}\n",
            t.as_str(),
            t.kebab(),
            t.description()
        ));
    }
    out
}

/// The text `fixtures show` prints.
pub fn show(name: &str) -> anyhow::Result<&'static str> {
    if name.eq_ignore_ascii_case("ping") {
        return Ok(fixtures::PING_TEXT);
    }
    let t: EventType = name
        .parse()
        .map_err(|e| {
            crate::exit::bad_input(format!(
                "{e}, their kebab names (course-enrollment, …, vilt-registration) or PING; `hookjar fixtures list` lists both"
            ))
        })?;
    Ok(fixtures::text(t))
}
