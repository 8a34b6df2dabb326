//! Gap checks that mean something at any time scale (issue #9).
//!
//! Against a remote dispatcher the suite runs in wall time while the dispatcher counts
//! `N` seconds per wall second (X3). A gap of `d` dispatcher seconds is `d / N` wall
//! seconds plus the dispatcher's per-attempt overhead `o` (claiming, sending,
//! recording; 1–2 ms on loopback, measured in the run and subtracted). Gaps are
//! compared in **wall time** with a tolerance of [`FIXED`] plus [`RELATIVE`] of the
//! expected wall gap.
//!
//! A span of expected wall length `e` is *resolvable* when an error of 50 % in it is at
//! least twice the tolerance: `e / 2 ≥ 2 (FIXED + RELATIVE e)`, i.e.
//! `e ≥` [`min_resolvable`] (≈ 0.22 s). Consecutive gaps too short to resolve one by
//! one are checked together, as one span, once their sum is resolvable; a gap the run
//! cannot resolve on its own is reported, with the largest scale that would resolve it
//! (`d / min_resolvable`), so a case that claims it becomes **inconclusive**, never a
//! pass. In virtual time every gap is exact and resolvable.

use std::time::Duration;

use hookjar_core::RetryPolicy;
use tokio::time::Instant;

use super::TimeMode;

/// The fixed part of the wall-time tolerance: scheduling and network jitter.
pub const FIXED: Duration = Duration::from_millis(50);
/// The relative part of the wall-time tolerance.
pub const RELATIVE: f64 = 0.02;
/// The tolerance in virtual time (exact clocks; margin for rounding only).
const VIRTUAL_TOLERANCE: Duration = Duration::from_millis(100);
/// The largest per-attempt overhead the calibration accepts.
const MAX_OVERHEAD: Duration = Duration::from_millis(100);

/// The shortest wall span whose 50 % error exceeds twice the tolerance.
pub fn min_resolvable() -> Duration {
    FIXED.mul_f64(4.0 / (1.0 - 4.0 * RELATIVE))
}

/// The largest time scale at which a gap of `d` dispatcher time is resolvable.
pub fn max_scale_for(d: Duration) -> f64 {
    (d.as_secs_f64() / min_resolvable().as_secs_f64())
        .floor()
        .max(1.0)
}

/// One expected gap: the dispatcher-time back-off `delay` before retry `retry`, plus
/// `answer`, the wall time the receiver took to answer the attempt before it (its
/// scripted delay), which a spec-conforming dispatcher waits out before its back-off
/// starts.
#[derive(Debug, Clone, Copy)]
pub struct Gap {
    pub retry: u32,
    pub delay: Duration,
    pub answer: Duration,
}

impl Gap {
    /// The policy's gaps before retries `first..=last`, with instant answers.
    pub fn schedule(policy: &RetryPolicy, first: u32, last: u32) -> Vec<Gap> {
        (first..=last)
            .filter_map(|n| {
                policy.delay_before_retry(n).map(|delay| Gap {
                    retry: n,
                    delay,
                    answer: Duration::ZERO,
                })
            })
            .collect()
    }
}

/// What a gap check found.
#[derive(Debug, Clone, Default)]
pub struct Timing {
    /// The first span that does not match, in words.
    pub mismatch: Option<String>,
    /// The gaps (retry number, dispatcher delay) too short to check one by one.
    pub unresolved: Vec<(u32, Duration)>,
    /// Whether any span could be checked at all.
    pub any_resolved: bool,
    /// Whether a whole region (the growing back-offs, or the capped ones) was too
    /// short to check.
    pub unresolved_region: bool,
    /// What was checked, for the report.
    pub summary: String,
}

impl Timing {
    /// The largest scale resolving every unresolved gap, if any is unresolved.
    pub fn max_scale(&self) -> Option<f64> {
        self.unresolved
            .iter()
            .map(|(_, d)| max_scale_for(*d))
            .min_by(f64::total_cmp)
    }

    /// Words for the unresolved gaps.
    pub fn unresolved_note(&self, time: TimeMode) -> String {
        let Some((retry, d)) = self.unresolved.first() else {
            return String::new();
        };
        let n = match time {
            TimeMode::Scaled(n) => n,
            TimeMode::Virtual => 1.0,
        };
        format!(
            "the gap before retry {retry} ({} s) is {:.2} ms of wall time at ×{n}, below the {:.0} ms this run can resolve; --time-scale {} or less resolves it",
            d.as_secs_f64(),
            d.as_secs_f64() / n * 1000.0,
            min_resolvable().as_secs_f64() * 1000.0,
            self.max_scale().unwrap_or(1.0)
        )
    }
}

/// Checks the arrivals of one delivery's attempts against `gaps` (one per consecutive
/// pair of `arrivals`; extra arrivals are ignored, missing ones leave their gaps
/// unchecked: the caller checks the count). `overhead` is the per-attempt overhead
/// measured elsewhere, used when the run has no short gaps to calibrate with.
pub fn check(time: TimeMode, arrivals: &[Instant], gaps: &[Gap], overhead: Duration) -> Timing {
    let observed: Vec<Duration> = arrivals
        .windows(2)
        .map(|w| w[1].duration_since(w[0]))
        .collect();
    let n = observed.len().min(gaps.len());
    let (observed, gaps) = (&observed[..n], &gaps[..n]);
    match time {
        TimeMode::Virtual => check_virtual(observed, gaps),
        TimeMode::Scaled(scale) => check_scaled(scale, observed, gaps, overhead),
    }
}

fn check_virtual(observed: &[Duration], gaps: &[Gap]) -> Timing {
    let mut t = Timing {
        any_resolved: !gaps.is_empty(),
        summary: format!("{} gap(s) checked one by one (virtual time)", gaps.len()),
        ..Timing::default()
    };
    for (g, gap) in observed.iter().zip(gaps) {
        let expected = gap.delay + gap.answer;
        if g.abs_diff(expected) > VIRTUAL_TOLERANCE {
            t.mismatch = Some(format!(
                "gap before retry {} was {:.3}s, expected {}s (±{:.3}s)",
                gap.retry,
                g.as_secs_f64(),
                expected.as_secs_f64(),
                VIRTUAL_TOLERANCE.as_secs_f64()
            ));
            break;
        }
    }
    t
}

fn check_scaled(scale: f64, observed: &[Duration], gaps: &[Gap], fallback: Duration) -> Timing {
    let wall = |d: Duration| d.div_f64(scale);
    let r = min_resolvable();
    // Calibrate: the excess of gaps far below the resolution is the overhead.
    let mut excess: Vec<Duration> = observed
        .iter()
        .zip(gaps)
        .filter(|(_, g)| wall(g.delay) < FIXED / 5 && g.answer.is_zero())
        .map(|(o, g)| o.saturating_sub(wall(g.delay)))
        .collect();
    excess.sort();
    let overhead = if excess.len() >= 2 {
        excess[excess.len() / 2]
    } else {
        fallback
    }
    .min(MAX_OVERHEAD);

    let mut t = Timing::default();
    // Two regions, judged apart: the growing back-offs, and the capped ones (a delay
    // that repeats at the end of the list). A base delay that is off shows in the
    // first, a missing cap in the second.
    let cap = gaps
        .iter()
        .map(|g| g.delay)
        .max()
        .filter(|c| gaps.iter().filter(|g| g.delay == *c).count() >= 2);
    let region_of = |g: &Gap| usize::from(Some(g.delay) == cap);
    let mut groups: Vec<(usize, usize)> = Vec::new();
    for region in 0..2 {
        let idx: Vec<usize> = (0..gaps.len())
            .filter(|&i| region_of(&gaps[i]) == region)
            .collect();
        let (Some(&first), Some(&last)) = (idx.first(), idx.last()) else {
            continue;
        };
        let mut start = first;
        let mut sum = Duration::ZERO;
        let before = groups.len();
        for (i, gap) in gaps.iter().enumerate().take(last + 1).skip(first) {
            if wall(gap.delay) < r {
                t.unresolved.push((gap.retry, gap.delay));
            }
            sum += wall(gap.delay) + gap.answer;
            if sum >= r {
                groups.push((start, i));
                start = i + 1;
                sum = Duration::ZERO;
            }
        }
        if start <= last {
            // A short tail joins the region's last group; a region too short to
            // resolve at all stays unchecked.
            if groups.len() > before {
                if let Some(g) = groups.last_mut() {
                    g.1 = last;
                }
            } else {
                t.unresolved_region = true;
            }
        }
    }
    let mut checked = Vec::new();
    let mut long = [0usize; 2];
    let mut spans = [0usize; 2];
    let mut first_long: [Option<String>; 2] = [None, None];
    for (a, b) in groups {
        let region = region_of(&gaps[a]);
        let span = &gaps[a..=b];
        let expected: Duration = span
            .iter()
            .map(|g| wall(g.delay) + g.answer)
            .sum::<Duration>()
            + overhead * span.len() as u32;
        let seen: Duration = observed[a..=b].iter().sum();
        let tolerance = FIXED + expected.mul_f64(RELATIVE);
        let (from, to) = (span[0].retry, span[span.len() - 1].retry);
        let label = if from == to {
            format!("retry {from}")
        } else {
            format!("retries {from}–{to}")
        };
        t.any_resolved = true;
        spans[region] += 1;
        checked.push(label.clone());
        let short = seen + tolerance < expected;
        if seen.abs_diff(expected) > tolerance {
            let dispatcher: Duration = span.iter().map(|g| g.delay).sum();
            let text = format!(
                "the gaps before {label} took {:.3} s of wall time, expected {:.3} s ({} s of back-off at ×{scale}, plus {:.1} ms overhead per attempt) ± {:.3} s — about {:.0} s of dispatcher time instead of {}",
                seen.as_secs_f64(),
                expected.as_secs_f64(),
                dispatcher.as_secs_f64(),
                overhead.as_secs_f64() * 1000.0,
                tolerance.as_secs_f64(),
                (seen
                    .saturating_sub(overhead * span.len() as u32)
                    .saturating_sub(span.iter().map(|g| g.answer).sum()))
                .as_secs_f64()
                    * scale,
                dispatcher.as_secs_f64()
            );
            if short {
                // A dispatcher under load can be late, never early: a short span is
                // always a departure.
                t.mismatch.get_or_insert(text);
            } else {
                long[region] += 1;
                first_long[region].get_or_insert(text);
            }
        }
    }
    // A long span may be one scheduling hiccup of a loaded machine; a dispatcher that
    // waits too long does so in most spans of a region.
    for region in 0..2 {
        if t.mismatch.is_none() && long[region] * 2 > spans[region] {
            t.mismatch = first_long[region].take().map(|m| {
                format!(
                    "{m} ({} of {} spans of this region too long)",
                    long[region], spans[region]
                )
            });
        }
    }
    t.summary = if checked.is_empty() {
        format!("no span resolvable at ×{scale}")
    } else {
        format!(
            "checked in wall time at ×{scale} (overhead {:.1} ms/attempt subtracted): {}",
            overhead.as_secs_f64() * 1000.0,
            checked.join(", ")
        )
    };
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrivals(gaps_ms: &[f64]) -> Vec<Instant> {
        let t0 = Instant::now();
        let mut out = vec![t0];
        let mut at = Duration::ZERO;
        for g in gaps_ms {
            at += Duration::from_secs_f64(g / 1000.0);
            out.push(t0 + at);
        }
        out
    }

    /// Wall gaps (ms) of a dispatcher with `base` at `scale` and 2 ms overhead.
    fn run(base: f64, scale: f64, retries: u32) -> Vec<f64> {
        let p = RetryPolicy {
            base_delay: Duration::from_secs_f64(base),
            ..RetryPolicy::default()
        };
        (1..=retries)
            .map(|n| p.delay_before_retry(n).unwrap().as_secs_f64() / scale * 1000.0 + 2.0)
            .collect()
    }

    #[test]
    fn resolution_is_about_a_fifth_of_a_second() {
        let r = min_resolvable().as_secs_f64();
        assert!((0.2..0.25).contains(&r), "{r}");
        assert_eq!(max_scale_for(Duration::from_secs(2)), 9.0);
    }

    #[test]
    fn a_base_delay_off_by_half_fails_at_3600_over_twelve_retries() {
        let p = RetryPolicy::default();
        let gaps = Gap::schedule(&p, 1, 12);
        let good = check(
            TimeMode::Scaled(3600.0),
            &arrivals(&run(2.0, 3600.0, 12)),
            &gaps,
            Duration::ZERO,
        );
        assert!(good.mismatch.is_none(), "{good:?}");
        assert!(good.any_resolved);
        assert!(!good.unresolved.is_empty(), "gap 1 is 0.6 ms at ×3600");
        let bad = check(
            TimeMode::Scaled(3600.0),
            &arrivals(&run(3.0, 3600.0, 12)),
            &gaps,
            Duration::ZERO,
        );
        assert!(bad.mismatch.is_some(), "{bad:?}");
        let ten = check(
            TimeMode::Scaled(3600.0),
            &arrivals(&run(10.0, 3600.0, 12)),
            &gaps,
            Duration::ZERO,
        );
        assert!(ten.mismatch.is_some(), "{ten:?}");
    }

    #[test]
    fn at_scale_one_every_gap_is_resolved() {
        let gaps = Gap::schedule(&RetryPolicy::default(), 1, 5);
        let t = check(
            TimeMode::Scaled(1.0),
            &arrivals(&run(2.0, 1.0, 5)),
            &gaps,
            Duration::from_millis(2),
        );
        assert!(t.mismatch.is_none() && t.unresolved.is_empty(), "{t:?}");
        let t = check(
            TimeMode::Scaled(1.0),
            &arrivals(&run(3.0, 1.0, 5)),
            &gaps,
            Duration::from_millis(2),
        );
        assert!(t.mismatch.is_some(), "{t:?}");
    }

    #[test]
    fn one_late_span_of_many_is_load_not_a_departure_but_an_early_one_is() {
        let gaps = Gap::schedule(&RetryPolicy::default(), 1, 39);
        let mut wall = run(2.0, 36000.0, 39);
        wall[20] += 95.0; // one hiccup of a loaded machine
        let t = check(
            TimeMode::Scaled(36000.0),
            &arrivals(&wall),
            &gaps,
            Duration::ZERO,
        );
        assert!(t.mismatch.is_none(), "{t:?}");
        let mut wall = run(2.0, 36000.0, 39);
        wall[20] -= 95.0;
        wall[21] -= 95.0;
        let t = check(
            TimeMode::Scaled(36000.0),
            &arrivals(&wall),
            &gaps,
            Duration::ZERO,
        );
        assert!(t.mismatch.is_some(), "{t:?}");
    }

    #[test]
    fn nothing_resolvable_is_no_pass() {
        let gaps = Gap::schedule(&RetryPolicy::default(), 1, 5);
        let t = check(
            TimeMode::Scaled(36000.0),
            &arrivals(&run(10.0, 36000.0, 5)),
            &gaps,
            Duration::ZERO,
        );
        assert!(!t.any_resolved && t.mismatch.is_none(), "{t:?}");
        assert_eq!(t.max_scale(), Some(9.0));
    }
}
