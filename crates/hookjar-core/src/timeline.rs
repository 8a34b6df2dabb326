//! X3: dispatcher time as one timeline, anchored once and kept in the store.
//!
//! Dispatcher time is what back-off is measured in. With a time scale N, one second
//! of wall time counts as N seconds of dispatcher time. The relation is an anchor
//! ([`Timeline`]: wall time W0, dispatcher time D0, scale N) saved when N is set:
//!
//! ```text
//! dispatcher(wall) = D0 + (wall − W0) × N
//! ```
//!
//! Retry instants are stored in dispatcher time, so they keep their place across a
//! restart (time spent stopped counts, as it would for Skilljar); a restart with
//! another N saves a new anchor at the current dispatcher time ([`Timeline::resume`]).
//! At N = 1 from the first start, dispatcher time is wall time.
//!
//! Instants are microseconds since the Unix epoch.

/// The largest time scale accepted: a million (the 50-hour retry life-cycle in a
/// fifth of a second). Larger scales would push dispatcher time past the year 9999
/// within days of wall time.
pub const MAX_TIME_SCALE: f64 = 1e6;

/// A time scale that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "the time scale {0} is not usable: give a finite number greater than 0 and at most 1000000 (e.g. 1, 60 or 3600)"
)]
pub struct TimeScaleError(pub f64);

/// Checks an X3 time scale: finite, greater than 0, at most [`MAX_TIME_SCALE`].
pub fn validate_time_scale(scale: f64) -> Result<f64, TimeScaleError> {
    if scale.is_finite() && scale > 0.0 && scale <= MAX_TIME_SCALE {
        Ok(scale)
    } else {
        Err(TimeScaleError(scale))
    }
}

/// The anchor of dispatcher time: at wall time `wall`, dispatcher time was
/// `dispatcher`, and it runs `scale` times as fast as the wall clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timeline {
    pub wall: i64,
    pub dispatcher: i64,
    pub scale: f64,
}

impl Timeline {
    /// The first anchor of a store: dispatcher time starts as wall time.
    pub fn start(wall_now: i64, scale: f64) -> Self {
        Timeline {
            wall: wall_now,
            dispatcher: wall_now,
            scale,
        }
    }

    /// The timeline a (re)starting dispatcher uses, and whether it is a new anchor to
    /// save: the stored one when the scale is unchanged; otherwise a new anchor at the
    /// current dispatcher time (so pending instants keep their place); the first
    /// anchor when none is stored.
    pub fn resume(stored: Option<Timeline>, wall_now: i64, scale: f64) -> (Timeline, bool) {
        match stored {
            None => (Timeline::start(wall_now, scale), true),
            Some(t) if t.scale == scale => (t, false),
            Some(t) => (
                Timeline {
                    wall: wall_now,
                    dispatcher: t.dispatcher_at(wall_now),
                    scale,
                },
                true,
            ),
        }
    }

    /// Dispatcher time at a wall time (saturating at the ends of `i64`).
    pub fn dispatcher_at(&self, wall: i64) -> i64 {
        let elapsed = (wall as f64 - self.wall as f64) * self.scale;
        // `as` saturates, and so does the addition.
        self.dispatcher.saturating_add(elapsed.round() as i64)
    }

    /// The earliest wall time at which dispatcher time reaches `dispatcher` (rounded
    /// up, so a timer set to it never fires early).
    pub fn wall_at(&self, dispatcher: i64) -> i64 {
        let ahead = (dispatcher as f64 - self.dispatcher as f64) / self.scale;
        let wall = self.wall.saturating_add(ahead.ceil() as i64);
        // Rounding of the forward map can leave it a microsecond short.
        if self.dispatcher_at(wall) < dispatcher {
            wall.saturating_add(1)
        } else {
            wall
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn scales_are_checked() {
        for ok in [1.0, 0.5, 3600.0, MAX_TIME_SCALE] {
            assert_eq!(validate_time_scale(ok), Ok(ok));
        }
        for bad in [
            0.0,
            -1.0,
            f64::NAN,
            f64::INFINITY,
            1e12,
            MAX_TIME_SCALE * 1.5,
        ] {
            assert!(validate_time_scale(bad).is_err(), "{bad}");
        }
        assert!(TimeScaleError(1e12).to_string().contains("at most 1000000"));
    }

    #[test]
    fn a_restart_keeps_or_reanchors() {
        let first = Timeline::start(1_000, 3600.0);
        assert_eq!(first.dispatcher_at(2_000), 1_000 + 3_600_000);
        // Same scale: the stored anchor, time spent stopped counted.
        assert_eq!(Timeline::resume(Some(first), 5_000, 3600.0), (first, false));
        // Another scale: a new anchor at the current dispatcher time.
        let (t, save) = Timeline::resume(Some(first), 5_000, 1.0);
        assert!(save);
        assert_eq!(t.dispatcher, first.dispatcher_at(5_000));
        assert_eq!(t.dispatcher_at(6_000), first.dispatcher_at(5_000) + 1_000);
        assert_eq!(
            Timeline::resume(None, 7, 2.0),
            (Timeline::start(7, 2.0), true)
        );
    }

    proptest! {
        /// Re-anchoring never moves dispatcher time at the moment of the change, and
        /// `wall_at` reaches an instant, at most one wall microsecond late.
        #[test]
        fn reanchoring_is_continuous(
            w0 in 0i64..2_000_000_000_000_000,
            up in 0i64..400_000_000_000,
            a in 0.001f64..MAX_TIME_SCALE,
            b in 0.001f64..MAX_TIME_SCALE,
            ahead in 0i64..400_000_000_000,
        ) {
            let first = Timeline::start(w0, a);
            let now = w0 + up;
            let (second, _) = Timeline::resume(Some(first), now, b);
            prop_assert_eq!(second.dispatcher_at(now), first.dispatcher_at(now));
            let due = second.dispatcher_at(now) + ahead;
            let wall = second.wall_at(due);
            prop_assert!(second.dispatcher_at(wall) >= due);
            let late = second.dispatcher_at(wall) - due;
            prop_assert!(late as f64 <= b + 1.0, "late by {}", late);
        }
    }
}
