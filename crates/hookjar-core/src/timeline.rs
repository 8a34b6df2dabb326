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
        // The difference is taken in integers first: dispatcher instants can be far
        // from zero (a large scale run for days), where an `f64` is only good to tens
        // of microseconds, but the span from the anchor is small and exact.
        let elapsed = span(self.wall, wall) * self.scale;
        // `as` saturates, and so does the addition.
        self.dispatcher.saturating_add(elapsed.round() as i64)
    }

    /// The earliest wall time at which dispatcher time reaches `dispatcher` (rounded
    /// up, so a timer set to it never fires early).
    pub fn wall_at(&self, dispatcher: i64) -> i64 {
        let ahead = span(self.dispatcher, dispatcher) / self.scale;
        let mut wall = self.wall.saturating_add(ahead.ceil() as i64);
        // Rounding can leave the forward map short of the instant by a fraction of a
        // dispatcher microsecond; below a scale of 1 one wall microsecond may not make
        // that up, so step until it does (a step is at least 1 / scale wall µs).
        let step = (1.0 / self.scale).ceil().max(1.0) as i64;
        for _ in 0..4 {
            if self.dispatcher_at(wall) >= dispatcher {
                break;
            }
            wall = wall.saturating_add(step);
        }
        wall
    }
}

/// `to − from` as an `f64`, computed exactly in `i128` before the conversion.
fn span(from: i64, to: i64) -> f64 {
    (to as i128 - from as i128) as f64
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

    /// A case proptest found in CI: a scale of 472,505 for 3.6 days put dispatcher
    /// time near 1.5e17 µs, where an `f64` is good to 32 µs, and the re-anchored
    /// scale of 0.001 could not make up the shortfall one wall microsecond at a time.
    #[test]
    fn a_far_instant_at_a_small_scale_is_reached() {
        let first = Timeline::start(185_555_146_294_302, 472_504.992_052_139_66);
        let now = 185_555_146_294_302 + 308_582_735_531;
        let (second, _) = Timeline::resume(Some(first), now, 0.001);
        let due = second.dispatcher_at(now) + 5_070_241;
        let wall = second.wall_at(due);
        assert!(second.dispatcher_at(wall) >= due);
        assert!(second.dispatcher_at(wall - 1) < due || second.dispatcher_at(wall) == due);
    }

    /// Scales from 0.001 to [`MAX_TIME_SCALE`], spread evenly over the orders of
    /// magnitude (drawn uniformly, a scale below 1 would come up once in a million).
    fn scale() -> impl Strategy<Value = f64> {
        (-3.0f64..=6.0).prop_map(|e| 10f64.powf(e).min(MAX_TIME_SCALE))
    }

    proptest! {
        /// Re-anchoring never moves dispatcher time at the moment of the change, and
        /// `wall_at` reaches an instant, at most one wall microsecond late.
        #[test]
        fn reanchoring_is_continuous(
            w0 in 0i64..2_000_000_000_000_000,
            up in 0i64..400_000_000_000,
            a in scale(),
            b in scale(),
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
