//! The retry schedule of S14–S15 as a value.
//!
//! A [`RetryPolicy`] says how long to wait before each retry and how many retries
//! there are. With the defaults, the waits are 2, 4, 8, …, 2048 s, then 3600 s
//! forty-nine times: 60 retries, 61 POSTs, 180,494 s (≈ 50.1 h) of waiting.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a failed delivery is retried (S14–S15). Every field can be changed; the
/// defaults are Skilljar's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// The wait before the first retry (S14: 2 s).
    pub base_delay: Duration,
    /// Each later wait is the previous one times this (S14: 2).
    pub factor: u32,
    /// No wait is longer than this (S14: one hour).
    pub max_delay: Duration,
    /// Retries after the first attempt (S15: 60).
    pub max_retries: u32,
}

/// The largest retry count a policy accepts; far beyond any real use, it keeps a
/// schedule small enough to print.
pub const MAX_RETRIES_LIMIT: u32 = 100_000;

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base_delay: Duration::from_secs(2),
            factor: 2,
            max_delay: Duration::from_secs(3600),
            max_retries: 60,
        }
    }
}

/// A retry policy that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("the base delay must be greater than zero (got 0); use e.g. 2s")]
    ZeroBaseDelay,
    #[error("the back-off factor must be at least 1 (got {0})")]
    FactorTooSmall(u32),
    #[error(
        "the maximum delay ({max:?}) must not be shorter than the base delay ({base:?}); raise the maximum or lower the base"
    )]
    CapBelowBase { base: Duration, max: Duration },
    #[error("the retry limit must be at most {MAX_RETRIES_LIMIT} (got {0})")]
    TooManyRetries(u32),
}

/// One POST in a delivery's schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ScheduledAttempt {
    /// 0 for the first POST, n for the n-th retry.
    pub attempt: u32,
    /// The wait after the previous attempt (zero for attempt 0).
    pub delay: Duration,
    /// Time since the first attempt, if every earlier attempt answered at once.
    pub at: Duration,
}

impl RetryPolicy {
    /// A policy, checked.
    pub fn new(
        base_delay: Duration,
        factor: u32,
        max_delay: Duration,
        max_retries: u32,
    ) -> Result<Self, PolicyError> {
        RetryPolicy {
            base_delay,
            factor,
            max_delay,
            max_retries,
        }
        .validated()
    }

    /// Checks a policy built field by field (or deserialised).
    pub fn validated(self) -> Result<Self, PolicyError> {
        if self.base_delay.is_zero() {
            return Err(PolicyError::ZeroBaseDelay);
        }
        if self.factor < 1 {
            return Err(PolicyError::FactorTooSmall(self.factor));
        }
        if self.max_delay < self.base_delay {
            return Err(PolicyError::CapBelowBase {
                base: self.base_delay,
                max: self.max_delay,
            });
        }
        if self.max_retries > MAX_RETRIES_LIMIT {
            return Err(PolicyError::TooManyRetries(self.max_retries));
        }
        Ok(self)
    }

    /// The wait before retry `n` (1-based), or `None` when `n` is 0 or beyond the
    /// retry limit. `base × factorⁿ⁻¹`, capped at `max_delay`; never overflows.
    pub fn delay_before_retry(&self, n: u32) -> Option<Duration> {
        if n == 0 || n > self.max_retries {
            return None;
        }
        Some(self.uncapped_or_cap(n))
    }

    fn uncapped_or_cap(&self, n: u32) -> Duration {
        let grown = self
            .factor
            .checked_pow(n - 1)
            .and_then(|m| self.base_delay.checked_mul(m));
        match grown {
            Some(d) if d <= self.max_delay => d,
            _ => self.max_delay,
        }
    }

    /// Every POST of a delivery that never succeeds: attempt 0 then each retry.
    pub fn schedule(&self) -> Vec<ScheduledAttempt> {
        let mut at = Duration::ZERO;
        let mut out = Vec::with_capacity(self.max_retries as usize + 1);
        out.push(ScheduledAttempt {
            attempt: 0,
            delay: Duration::ZERO,
            at,
        });
        for n in 1..=self.max_retries {
            let delay = self.uncapped_or_cap(n);
            at = at.saturating_add(delay);
            out.push(ScheduledAttempt {
                attempt: n,
                delay,
                at,
            });
        }
        out
    }

    /// The sum of every wait: how long after the first POST the last one is sent.
    pub fn total(&self) -> Duration {
        (1..=self.max_retries)
            .map(|n| self.uncapped_or_cap(n))
            .fold(Duration::ZERO, Duration::saturating_add)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_skilljars() {
        let p = RetryPolicy::default();
        let delays: Vec<u64> = (1..=60)
            .map(|n| p.delay_before_retry(n).unwrap().as_secs())
            .collect();
        assert_eq!(
            &delays[..11],
            &[2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048]
        );
        assert!(delays[11..].iter().all(|&d| d == 3600));
        assert_eq!(delays[11..].len(), 49);
        assert_eq!(p.total(), Duration::from_secs(180_494));
        assert_eq!(p.delay_before_retry(0), None);
        assert_eq!(p.delay_before_retry(61), None);
        let s = p.schedule();
        assert_eq!(s.len(), 61);
        assert_eq!(s[60].at, Duration::from_secs(180_494));
    }

    #[test]
    fn bad_policies_are_refused_with_reasons() {
        let d = RetryPolicy::default();
        assert_eq!(
            RetryPolicy {
                base_delay: Duration::ZERO,
                ..d
            }
            .validated(),
            Err(PolicyError::ZeroBaseDelay)
        );
        assert_eq!(
            RetryPolicy { factor: 0, ..d }.validated(),
            Err(PolicyError::FactorTooSmall(0))
        );
        let e = RetryPolicy {
            max_delay: Duration::from_secs(1),
            ..d
        }
        .validated()
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "the maximum delay (1s) must not be shorter than the base delay (2s); raise the maximum or lower the base"
        );
    }
}
