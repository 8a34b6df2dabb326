//! The delivery engine: a scheduler and a bounded pool of senders.
//!
//! ```text
//!            wake (emit, redeliver)         a worker finished
//!                          │                        │
//!   ┌──────────────────────▼────────────────────────▼──────┐
//!   │ scheduler: sleep until the earliest due_at; then     │──settle──▶ store
//!   │ record what finished + claim what is due (one call)  │  (one transaction)
//!   └──────────────────────┬───────────────────────────────┘
//!                          │ one task per claimed delivery (≤ concurrency)
//!                  ┌───────▼────────┐
//!                  │ worker: POST,  │  DeliveryRequest (core) → Sender → Outcome
//!                  │ classify       │  RetryPolicy::classify (core) → Verdict
//!                  └───────┬────────┘
//!                          │ AttemptRecord (the worker's result)
//!                          ▼
//!                  back to the scheduler
//! ```
//!
//! The scheduler sets one timer, to the earliest due instant in the store, and sleeps
//! until it fires or something wakes it (no polling). Each delivery moves through
//! typed phases: `Claimed` (marked `inflight`, its attempt written ahead as
//! `started`) → sent → `AttemptRecord` (with the core's verdict) → recorded as
//! delivered, pending again at an absolute instant, or failed with the webhook
//! deactivated.
//!
//! Group commit, engine side: each turn of the scheduler records every attempt that
//! finished since the last turn and claims what is due in one store call
//! ([`Store::settle`]: one transaction on SQLite). While that call runs, more
//! attempts finish and wait for the next turn, so under load one commit covers many
//! attempts, and a lone attempt waits for nobody.
//!
//! S19: an attempt still `started` when the process dies counts as made; on the next
//! start [`recover`] records it with the outcome `unknown` and the normal back-off
//! from the restart (or `RETRY_COUNT` if it was the last), so no delivery ever sees
//! more than 61 POSTs nor a retry earlier than its back-off.
//!
//! Store errors (a full disk, …) never drop work: the scheduler retries its turn with
//! back-off (1 s doubling to 30 s), keeping the records it could not write, and
//! deliveries left `inflight` meanwhile are recorded as soon as the store accepts
//! writes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hookjar_core::{DeliveryRequest, Outcome, RetryPolicy, TransportKind};
use tokio::sync::{Notify, watch};
use tokio::task::{JoinError, JoinSet};

use crate::clock::Clock;
use crate::deliver::Sender;
use crate::store::{AttemptRecord, ClaimRequest, Claimed, RecordEffects, Store};

/// How long the scheduler waits after a first store error before
/// trying again; each further error doubles it, up to [`ERROR_PAUSE_MAX`].
const ERROR_PAUSE: Duration = Duration::from_secs(1);
const ERROR_PAUSE_MAX: Duration = Duration::from_secs(30);

/// The pause after `errors` store errors in a row (≥ 1).
fn error_pause(errors: u32) -> Duration {
    ERROR_PAUSE
        .saturating_mul(1 << errors.saturating_sub(1).min(5))
        .min(ERROR_PAUSE_MAX)
}

/// S19: records every attempt that was started and never completed (the last
/// process stopped during its POST) as made, with the outcome `unknown`, and
/// schedules its retry with the normal back-off counted from now (when the attempt
/// had certainly ended), or deactivates with `RETRY_COUNT` after the last retry.
/// Returns how many there were.
pub async fn recover(
    store: &Store,
    clock: &Clock,
    policy: &RetryPolicy,
) -> Result<usize, crate::StoreError> {
    let interrupted = store.interrupted().await?;
    let now = clock.now();
    let records: Vec<AttemptRecord> = interrupted
        .into_iter()
        .map(|i| {
            let outcome = Outcome::transport(
                TransportKind::Other,
                "outcome unknown: the dispatcher stopped during the attempt",
            );
            let verdict = policy.classify(&outcome, i.attempt);
            let detail = format!(
                "outcome unknown: the dispatcher stopped during this attempt, which counts as made; {}",
                match verdict {
                    hookjar_core::Verdict::RetryAfter { delay } => format!(
                        "the next retry waits the normal {} s from the restart",
                        delay.as_secs()
                    ),
                    _ => policy.describe(&outcome, i.attempt),
                }
            );
            AttemptRecord {
                delivery_seq: i.delivery_seq,
                webhook_seq: i.webhook_seq,
                attempt: i.attempt,
                revision: i.revision,
                started_at: i.started_at,
                wall_at: i.wall_at.unwrap_or_else(|| clock.wall_now()),
                finished_at: now,
                latency_us: 0,
                outcome,
                verdict,
                detail,
                unknown: true,
            }
        })
        .collect();
    let n = records.len();
    if n > 0 {
        store.record(records).await?;
        tracing::warn!(
            count = n,
            "attempts interrupted by the last stop count as made (outcome unknown); their retries follow the normal back-off"
        );
    }
    store.drop_pending_of_inactive().await?;
    Ok(n)
}

/// What the engine needs; shared with the API (which wakes it).
#[derive(Debug)]
pub struct Engine {
    pub store: Store,
    pub clock: Clock,
    pub policy: RetryPolicy,
    pub sender: Sender,
    /// Attempts in flight at most at once.
    pub concurrency: usize,
    /// Attempts in flight at most at once to one webhook.
    pub per_webhook: usize,
    /// Notified when new work may be due (emit, redeliver, a recorded retry).
    pub wake: Arc<Notify>,
}

impl Engine {
    /// Runs the scheduler until `shutdown` turns true, then waits for the attempts
    /// in flight and records them (graceful stop). Dropping (aborting) this future
    /// instead aborts every attempt: their deliveries stay `inflight` in the store and
    /// are resumed on the next start.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        // Each worker returns its attempt's record; the scheduler writes the records
        // of the attempts that finished with its next claim, in one store call.
        let mut workers: JoinSet<AttemptRecord> = JoinSet::new();
        // Attempts in flight per webhook seq (fairness: one slow endpoint cannot take
        // the whole pool).
        let mut in_flight: HashMap<i64, usize> = HashMap::new();
        // Records of finished attempts that are not in the store yet.
        let mut finished: Vec<AttemptRecord> = Vec::new();
        let reap = |in_flight: &mut HashMap<i64, usize>,
                    finished: &mut Vec<AttemptRecord>,
                    joined: Result<AttemptRecord, JoinError>| {
            if let Ok(record) = joined {
                if let Some(n) = in_flight.get_mut(&record.webhook_seq) {
                    *n -= 1;
                    if *n == 0 {
                        in_flight.remove(&record.webhook_seq);
                    }
                }
                finished.push(record);
            }
        };

        let mut errors = 0u32;
        // A shared store (PostgreSQL): renew this process's leases and look for
        // attempts of processes that died.
        let recheck = self.store.recheck_every();
        let mut rechecked = tokio::time::Instant::now();
        loop {
            if *shutdown.borrow() {
                break;
            }
            if let Some(every) = recheck.filter(|e| rechecked.elapsed() >= *e) {
                rechecked = tokio::time::Instant::now();
                if let Err(e) = recover(&self.store, &self.clock, &self.policy).await {
                    tracing::error!(error = %e, "cannot take over expired leases; trying again in {every:?}");
                }
            }
            // Reap finished workers; wait for one if the pool is full.
            while let Some(joined) = workers.try_join_next() {
                reap(&mut in_flight, &mut finished, joined);
            }
            if workers.len() >= self.concurrency {
                // A full pool still renews its leases on time (shared store).
                let recheck_at = recheck.map(|every| rechecked + every);
                tokio::select! {
                    Some(joined) = workers.join_next() => {
                        reap(&mut in_flight, &mut finished, joined);
                        continue;
                    }
                    _ = tokio::time::sleep_until(recheck_at.unwrap_or_else(tokio::time::Instant::now)), if recheck_at.is_some() => continue,
                    _ = shutdown.changed() => break,
                }
            }

            // Record what finished and claim what is due now: one store call (one
            // transaction on SQLite) per turn, however many attempts it covers.
            let room = self.concurrency - workers.len();
            let claim = ClaimRequest {
                now: self.clock.now(),
                wall_now: self.clock.wall_now(),
                limit: room,
                per_webhook: self.per_webhook,
                in_flight: in_flight.clone(),
            };
            let recording = finished.len();
            let settled = self
                .store
                .settle(std::mem::take(&mut finished), claim)
                .await;
            finished = settled.unrecorded;
            if recording > finished.len() {
                if errors > 0 {
                    tracing::info!(
                        count = recording - finished.len(),
                        "attempts recorded after store errors"
                    );
                }
                log_effects(settled.effects);
            }
            let (claimed, next) = match settled.claimed {
                Ok(c) => c,
                Err(e) => {
                    // The deliveries of unrecorded attempts stay `inflight` (their
                    // attempts written ahead) and are recorded once the store takes
                    // writes again.
                    errors += 1;
                    let pause = error_pause(errors);
                    tracing::error!(error = %e, unrecorded = finished.len(), "cannot record attempts and claim due deliveries; retrying in {pause:?}");
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = shutdown.changed() => break,
                    }
                    continue;
                }
            };
            errors = 0;
            let full = claimed.len() == room;
            for delivery in claimed {
                *in_flight.entry(delivery.webhook_seq).or_insert(0) += 1;
                let engine = Arc::clone(&self);
                workers.spawn(async move { engine.attempt(delivery).await });
            }
            if full {
                continue; // more may be due already
            }

            // Sleep until the earliest due instant of a webhook with room, until
            // woken (an emit, a redeliver), or until an attempt finishes (its record
            // is written next turn, and its webhook has room again).
            let timer = async {
                let due = next.map(|due| self.clock.instant_for(due));
                let recheck_at = recheck.map(|every| rechecked + every);
                match due.into_iter().chain(recheck_at).min() {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = timer => {}
                _ = self.wake.notified() => {}
                Some(joined) = workers.join_next() => reap(&mut in_flight, &mut finished, joined),
                _ = shutdown.changed() => break,
            }
        }

        // Graceful stop: let the attempts in flight finish, and record them.
        while let Some(joined) = workers.join_next().await {
            reap(&mut in_flight, &mut finished, joined);
        }
        if !finished.is_empty() {
            let count = finished.len();
            match self.store.record(finished).await {
                Ok(effects) => log_effects(effects),
                Err(e) => {
                    tracing::error!(error = %e, count, "cannot record attempts while stopping; the next start recovers them (outcome unknown)");
                }
            }
        }
    }

    /// One attempt: build the request (core), send it, classify the outcome (core).
    async fn attempt(&self, d: Claimed) -> AttemptRecord {
        let request = DeliveryRequest::for_webhook(&d.webhook, d.body.clone());
        #[cfg(feature = "faults")]
        let request = crate::faults::request(request, &d.webhook, d.attempt);
        let started_at = self.clock.now();
        let wall_at = self.clock.wall_now();
        let sent = self.sender.send(&request).await;
        let finished_at = self.clock.now();
        #[cfg(feature = "faults")]
        let finished_at = crate::faults::finished_at(started_at, finished_at);
        let verdict = self.policy.classify(&sent.outcome, d.attempt);
        #[cfg(feature = "faults")]
        let verdict = crate::faults::verdict(verdict, &sent.outcome, &self.policy, d.attempt);
        let mut detail = self.policy.describe(&sent.outcome, d.attempt);
        if let Some(code) = sent.downgraded {
            // S18: the client did what Python's requests does; say so, loudly.
            detail.push_str(&format!(
                "; a {code} redirect turned the POST into a GET without the body, so the receiver never got the event"
            ));
            tracing::warn!(
                delivery = %d.delivery_id,
                webhook = %d.webhook.id,
                status = code,
                "a {code} redirect turned the POST into a GET without the body (S18); use 307/308 to keep the POST"
            );
        }
        #[cfg(feature = "faults")]
        crate::faults::before_record().await;
        // One line per attempt; never the URL's query, auth or headers (secrets).
        tracing::info!(
            delivery = %d.delivery_id,
            webhook = %d.webhook.id,
            event_type = %d.event_type,
            digest = %d.body.digest(),
            attempt = d.attempt,
            latency_ms = sent.latency.as_millis() as u64,
            verdict = verdict.label(),
            "{detail}"
        );
        AttemptRecord {
            delivery_seq: d.delivery_seq,
            webhook_seq: d.webhook_seq,
            attempt: d.attempt,
            revision: d.revision,
            started_at,
            wall_at,
            finished_at,
            latency_us: i64::try_from(sent.latency.as_micros()).unwrap_or(i64::MAX),
            outcome: sent.outcome,
            verdict,
            detail,
            unknown: false,
        }
    }
}

/// Logs what recording a batch did to webhooks and deliveries.
fn log_effects(effects: RecordEffects) {
    if effects.skipped > 0 {
        tracing::info!(
            skipped = effects.skipped,
            "attempts of deleted webhooks were not recorded"
        );
    }
    if effects.lost > 0 {
        tracing::warn!(
            lost = effects.lost,
            "results not recorded: this process was stalled past its lease and another dispatcher took these attempts over (they count as made there, outcome unknown)"
        );
    }
    if effects.stale > 0 {
        tracing::info!(
            stale = effects.stale,
            "verdicts from before a webhook update were logged, not applied (S16)"
        );
    }
    for (webhook, reason, dropped) in effects.deactivated {
        tracing::warn!(
            %webhook,
            %reason,
            dropped,
            "webhook deactivated; its pending deliveries were dropped"
        );
    }
}
