//! The dispatcher's two clocks, in one place.
//!
//! - **Deadlines** use [`tokio::time::Instant`], so a test runtime started with
//!   `start_paused = true` runs two days of back-off in no real time.
//! - **Stored instants** are absolute: microseconds since the Unix epoch of
//!   *dispatcher time*, which is the wall-clock time read once when the clock is made
//!   (the anchor) plus the tokio time elapsed since, multiplied by the time scale (X3).
//!
//! With a time scale of 3600, one real second of back-off counts as an hour: a retry
//! due in 3600 s of dispatcher time fires after one second. Stored instants keep their
//! meaning across restarts because they are absolute; a new process anchors its own
//! clock to the wall clock and maps the stored instants onto its own tokio timeline.
//!
//! This is the only module that reads [`SystemTime::now`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use tokio::time::Instant;

/// Microseconds since the Unix epoch, in dispatcher time.
pub type Micros = i64;

/// The dispatcher's clock: wall-clock anchor, tokio anchor and time scale.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    anchor_wall: Micros,
    anchor_instant: Instant,
    scale: f64,
}

impl Clock {
    /// A clock anchored at the current wall-clock time and the current tokio instant.
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

    /// A clock whose dispatcher time at `instant` is `wall` (for tests that want a
    /// fixed date).
    pub fn anchored(wall: Micros, instant: Instant, scale: f64) -> Self {
        let scale = if scale.is_finite() && scale > 0.0 {
            scale
        } else {
            1.0
        };
        Clock {
            anchor_wall: wall,
            anchor_instant: instant,
            scale,
        }
    }

    /// The time scale (X3).
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Now, in dispatcher time.
    pub fn now(&self) -> Micros {
        self.micros_at(Instant::now())
    }

    /// Now on the wall clock, unscaled, as a date: payload and sample timestamps
    /// (S11). X3's time scale compresses back-off only; a receiver that checks
    /// timestamp freshness must still see the real time.
    pub fn wall_datetime(&self) -> OffsetDateTime {
        let elapsed = Instant::now().saturating_duration_since(self.anchor_instant);
        to_datetime(self.anchor_wall.saturating_add(Self::micros_of(elapsed)))
    }

    /// The dispatcher time at a tokio instant.
    pub fn micros_at(&self, at: Instant) -> Micros {
        let elapsed = at.saturating_duration_since(self.anchor_instant);
        let scaled = (elapsed.as_micros() as f64 * self.scale).round() as i64;
        self.anchor_wall.saturating_add(scaled)
    }

    /// The tokio instant at which dispatcher time reaches `micros` (never before the
    /// anchor: an instant already past maps to the anchor, which is due at once).
    pub fn instant_for(&self, micros: Micros) -> Instant {
        let ahead = micros.saturating_sub(self.anchor_wall).max(0) as f64 / self.scale;
        // Round up, so a timer never fires before the stored instant is reached.
        let ahead = Duration::from_micros(ahead.ceil().min(u64::MAX as f64 / 2.0) as u64);
        self.anchor_instant + ahead
    }

    /// `delay` of dispatcher time, in micros.
    pub fn micros_of(delay: Duration) -> Micros {
        i64::try_from(delay.as_micros()).unwrap_or(i64::MAX)
    }
}

/// A stored instant as a date; out-of-range values clamp to the epoch.
pub fn to_datetime(micros: Micros) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
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
