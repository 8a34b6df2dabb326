//! The dispatcher's two clocks, in one place.
//!
//! - **Deadlines** use [`tokio::time::Instant`], so a test runtime started with
//!   `start_paused = true` runs two days of back-off in no real time.
//! - **Wall time** is read once, when the clock is made (the wall anchor), and then
//!   advanced by the tokio time elapsed since, so tests drive it too.
//! - **Dispatcher time** (stored instants: retry due times, the delivery log's `at`)
//!   is X3's one timeline: `D0 + (wall − W0) × N` from the anchor
//!   ([`hookjar_core::timeline::Timeline`]) kept in the store. A restart on the same
//!   store resumes the same timeline, so a pending retry keeps its place, and time
//!   spent stopped counts; a restart with another scale re-anchors at the current
//!   dispatcher time. At scale 1 from the first start, dispatcher time is wall time.
//!
//! With a time scale of 3600, one real second of back-off counts as an hour: a retry
//! due in 3600 s of dispatcher time fires after one second.
//!
//! This is the only module that reads [`SystemTime::now`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hookjar_core::timeline::Timeline;
use time::OffsetDateTime;
use tokio::time::Instant;

/// Microseconds since the Unix epoch (wall or dispatcher time, as named).
pub type Micros = i64;

/// The dispatcher's clock: a wall-clock source anchored to a tokio instant, and the
/// X3 timeline that maps wall time to dispatcher time.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    wall_base: Micros,
    instant_base: Instant,
    timeline: Timeline,
}

impl Clock {
    /// A clock reading the wall clock now, at the current tokio instant, with a fresh
    /// timeline at `scale` (the dispatcher replaces it with the store's on start).
    ///
    /// `scale` is X3's time scale (1.0 = real time); values that are not finite and
    /// positive are treated as 1.0. Must be called inside a tokio runtime when the
    /// runtime's clock is paused, so both anchors refer to the same moment.
    pub fn system(scale: f64) -> Self {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0);
        Clock::anchored(wall, Instant::now(), scale)
    }

    /// A clock whose wall time at `instant` is `wall` (for tests that want a fixed
    /// date, or a "new process" whose wall clock reads a later time).
    pub fn anchored(wall: Micros, instant: Instant, scale: f64) -> Self {
        let scale = if scale.is_finite() && scale > 0.0 {
            scale
        } else {
            1.0
        };
        Clock {
            wall_base: wall,
            instant_base: instant,
            timeline: Timeline::start(wall, scale),
        }
    }

    /// The same wall clock on another timeline (the one kept in the store).
    pub fn with_timeline(self, timeline: Timeline) -> Self {
        Clock { timeline, ..self }
    }

    /// The time scale (X3).
    pub fn scale(&self) -> f64 {
        self.timeline.scale
    }

    /// The X3 anchor in use.
    pub fn timeline(&self) -> Timeline {
        self.timeline
    }

    /// Now, in dispatcher time.
    pub fn now(&self) -> Micros {
        self.micros_at(Instant::now())
    }

    /// Now on the wall clock, unscaled.
    pub fn wall_now(&self) -> Micros {
        self.wall_at(Instant::now())
    }

    /// Now on the wall clock, as a date: payload and sample timestamps (S11). X3's
    /// time scale compresses back-off only; a receiver that checks timestamp
    /// freshness must still see the real time.
    pub fn wall_datetime(&self) -> OffsetDateTime {
        to_datetime(self.wall_now())
    }

    fn wall_at(&self, at: Instant) -> Micros {
        let elapsed = at.saturating_duration_since(self.instant_base);
        self.wall_base.saturating_add(Self::micros_of(elapsed))
    }

    /// The dispatcher time at a tokio instant.
    pub fn micros_at(&self, at: Instant) -> Micros {
        self.timeline.dispatcher_at(self.wall_at(at))
    }

    /// The wall time at which dispatcher time reaches `micros`.
    pub fn wall_for(&self, micros: Micros) -> Micros {
        self.timeline.wall_at(micros)
    }

    /// The tokio instant at which dispatcher time reaches `micros` (never before the
    /// wall anchor: an instant already past maps to it, which is due at once).
    pub fn instant_for(&self, micros: Micros) -> Instant {
        let ahead = self.wall_for(micros).saturating_sub(self.wall_base).max(0);
        // About 146 years at most, so the addition cannot overflow.
        let ahead = Duration::from_micros(ahead.min(1 << 52) as u64);
        self.instant_base + ahead
    }

    /// `delay` in micros.
    pub fn micros_of(delay: Duration) -> Micros {
        i64::try_from(delay.as_micros()).unwrap_or(i64::MAX)
    }
}

/// A stored instant as a date; out-of-range values clamp to the nearest date that
/// can be shown (years 1 to 9999), never to the epoch.
pub fn to_datetime(micros: Micros) -> OffsetDateTime {
    let max = time::macros::datetime!(9999-12-31 23:59:59.999999 UTC);
    let min = time::macros::datetime!(0001-01-01 00:00:00 UTC);
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000).unwrap_or(if micros > 0 {
        max
    } else {
        min
    })
}

/// A stored instant in S11's timestamp form (`2015-02-13T18:57:55.066475+00:00`).
pub fn format_micros(micros: Micros) -> String {
    hookjar_core::payload::format_timestamp(to_datetime(micros))
}

#[cfg(test)]
mod tests {
    #[tokio::test(start_paused = true)]
    async fn x3_payload_timestamps_are_not_scaled() {
        let clock = super::Clock::anchored(1_000_000, tokio::time::Instant::now(), 3600.0);
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        // Two real seconds: two hours of back-off, but two seconds on payloads.
        assert_eq!(clock.now(), 1_000_000 + 7_200_000_000);
        assert_eq!(
            clock.wall_datetime(),
            super::to_datetime(1_000_000 + 2_000_000)
        );
    }

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn scaled_time_maps_both_ways() {
        let start = Instant::now();
        let clock = Clock::anchored(1_000_000, start, 3600.0);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(clock.now(), 1_000_000 + 3_600_000_000);
        let due = clock.instant_for(1_000_000 + 7_200_000_000);
        assert_eq!(due - start, Duration::from_secs(2));
        assert_eq!(clock.instant_for(0), start, "past instants are due at once");
        assert_eq!(format_micros(0), "1970-01-01T00:00:00.000000+00:00");
        assert!(
            format_micros(i64::MAX).starts_with("9999-12-31"),
            "not 1970"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn x3_a_stored_timeline_counts_time_spent_stopped() {
        // The store's anchor: scale 3600 since wall time 0.
        let stored = Timeline::start(0, 3600.0);
        // A process started 10 s of wall time later.
        let clock = Clock::anchored(10_000_000, Instant::now(), 3600.0).with_timeline(stored);
        assert_eq!(clock.now(), 36_000_000_000, "ten hours of dispatcher time");
        assert_eq!(clock.wall_for(36_000_000_000 + 3_600_000_000), 11_000_000);
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// A timer set with `instant_for` never fires before the stored instant, and
        /// not more than one scaled microsecond after it.
        #[test]
        fn instant_for_never_fires_early(ahead in 0i64..400_000_000_000, scale in 0.001f64..100_000.0) {
            let start = Instant::now();
            let clock = Clock::anchored(1_700_000_000_000_000, start, scale);
            let due = 1_700_000_000_000_000 + ahead;
            let at = clock.micros_at(clock.instant_for(due));
            prop_assert!(at >= due, "fired at {at}, due {due}");
            prop_assert!((at - due) as f64 <= scale.max(1.0) + 1.0, "late by {}", at - due);
        }
    }
}
