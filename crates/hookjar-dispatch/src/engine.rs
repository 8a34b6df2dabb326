//! The delivery engine: a scheduler, a bounded pool of senders and a batching writer.
//!
//! ```text
//!            wake (emit, redeliver, recorded results)
//!                          │
//!   ┌──────────────────────▼───────────────────────┐
//!   │ scheduler: sleep until the earliest due_at   │──claim_due──▶ store
//!   └──────────────────────┬───────────────────────┘
//!                          │ one task per claimed delivery (≤ concurrency)
//!                  ┌───────▼────────┐
//!                  │ worker: POST,  │  DeliveryRequest (core) → Sender → Outcome
//!                  │ classify       │  RetryPolicy::classify (core) → Verdict
//!                  └───────┬────────┘
//!                          │ AttemptRecord (channel)
//!                  ┌───────▼────────┐
//!                  │ writer: record │──one transaction per batch──▶ store
//!                  └────────────────┘
//! ```
//!
//! The scheduler sets one timer, to the earliest due instant in the store, and sleeps
//! until it fires or something wakes it (no polling). Each delivery moves through
//! typed phases: `Claimed` (marked `inflight`, its attempt written ahead as
//! `started`) → sent → `AttemptRecord` (with the core's verdict) → recorded as
//! delivered, pending again at an absolute instant, or failed with the webhook
//! deactivated.
//!
//! S19: an attempt still `started` when the process dies counts as made; on the next
//! start [`recover`] records it with the outcome `unknown` and the normal back-off
//! from the restart (or `RETRY_COUNT` if it was the last), so no delivery ever sees
//! more than 61 POSTs nor a retry earlier than its back-off.
//!
//! Store errors (a full disk, …) never drop work: the scheduler and the writer retry
//! their bookkeeping with back-off (1 s doubling to 30 s), and deliveries left
//! `inflight` by a failed write are recorded as soon as the store accepts writes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hookjar_core::{DeliveryRequest, Outcome, RetryPolicy, TransportKind};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;

use crate::clock::{Clock, Micros};
use crate::deliver::Sender;
use crate::store::{AttemptRecord, Claimed, Store};

/// The most results written in one transaction.
const WRITE_BATCH: usize = 1024;
/// How long the scheduler and the writer wait after a first store error before
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
    /// in flight and their records (graceful stop). Dropping (aborting) this future
    /// instead aborts every attempt: their deliveries stay `inflight` in the store and
    /// are resumed on the next start.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let (records_tx, records_rx) = mpsc::unbounded_channel();
        let mut writer = JoinSet::new();
        writer.spawn(Arc::clone(&self).write_records(records_rx, shutdown.clone()));
        // Each worker returns its webhook's seq, so the in-flight count per webhook
        // can be kept (fairness: one slow endpoint cannot take the whole pool).
        let mut workers: JoinSet<i64> = JoinSet::new();
        let mut in_flight: HashMap<i64, usize> = HashMap::new();
        let done = |in_flight: &mut HashMap<i64, usize>, finished: Result<i64, _>| {
            if let Ok(seq) = finished {
                if let Some(n) = in_flight.get_mut(&seq) {
                    *n -= 1;
                    if *n == 0 {
                        in_flight.remove(&seq);
                    }
                }
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
            while let Some(finished) = workers.try_join_next() {
                done(&mut in_flight, finished);
            }
            if workers.len() >= self.concurrency {
                // A full pool still renews its leases on time (shared store).
                let recheck_at = recheck.map(|every| rechecked + every);
                tokio::select! {
                    Some(finished) = workers.join_next() => {
                        done(&mut in_flight, finished);
                        continue;
                    }
                    _ = tokio::time::sleep_until(recheck_at.unwrap_or_else(tokio::time::Instant::now)), if recheck_at.is_some() => continue,
                    _ = shutdown.changed() => break,
                }
            }

            // Claim what is due now and start one worker per delivery.
            let now = self.clock.now();
            let wall_now = self.clock.wall_now();
            let room = self.concurrency - workers.len();
            let claimed = match self
                .store
                .claim_due(now, wall_now, room, self.per_webhook, in_flight.clone())
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    errors += 1;
                    let pause = error_pause(errors);
                    tracing::error!(error = %e, "cannot claim due deliveries; retrying in {pause:?}");
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = shutdown.changed() => break,
                    }
                    continue;
                }
            };
            let full = claimed.len() == room;
            for delivery in claimed {
                *in_flight.entry(delivery.webhook_seq).or_insert(0) += 1;
                let engine = Arc::clone(&self);
                let tx = records_tx.clone();
                workers.spawn(async move {
                    let webhook_seq = delivery.webhook_seq;
                    let record = engine.attempt(delivery).await;
                    // The writer outlives the workers; a closed channel means the
                    // engine is being torn down, and the delivery stays inflight.
                    let _ = tx.send(record);
                    webhook_seq
                });
            }
            if full {
                continue; // more may be due already
            }

            // Sleep until the earliest due instant of a webhook with room, until
            // woken, or until a busy webhook's attempt finishes.
            let busy: Vec<i64> = in_flight
                .iter()
                .filter(|(_, n)| **n >= self.per_webhook)
                .map(|(seq, _)| *seq)
                .collect();
            let any_busy = !busy.is_empty();
            let next: Option<Micros> = match self.store.next_due(busy).await {
                Ok(n) => n,
                Err(e) => {
                    errors += 1;
                    let pause = error_pause(errors);
                    tracing::error!(error = %e, "cannot read the next due instant; retrying in {pause:?}");
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = shutdown.changed() => break,
                    }
                    continue;
                }
            };
            errors = 0;
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
                Some(finished) = workers.join_next(), if any_busy => done(&mut in_flight, finished),
                _ = shutdown.changed() => break,
            }
        }

        // Graceful stop: let the attempts in flight finish and be recorded.
        while workers.join_next().await.is_some() {}
        drop(records_tx);
        while writer.join_next().await.is_some() {}
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

    /// Writes attempt records in batches (one transaction each) and wakes the
    /// scheduler, since a retry may now be the earliest due delivery.
    ///
    /// A batch that cannot be written is retried with back-off until it is: its
    /// deliveries stay `inflight` (their attempts written ahead) meanwhile, and carry
    /// on by themselves once the store accepts writes. During a graceful stop a
    /// batch that still fails is left for the next start to recover (S19).
    async fn write_records(
        self: Arc<Self>,
        mut rx: mpsc::UnboundedReceiver<AttemptRecord>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut batch = Vec::with_capacity(WRITE_BATCH);
        while rx.recv_many(&mut batch, WRITE_BATCH).await > 0 {
            let records = std::mem::take(&mut batch);
            let mut errors = 0u32;
            loop {
                match self.store.record(records.clone()).await {
                    Ok(effects) => {
                        if errors > 0 {
                            tracing::info!(
                                count = records.len(),
                                "attempts recorded after store errors"
                            );
                        }
                        if effects.skipped > 0 {
                            tracing::info!(
                                skipped = effects.skipped,
                                "attempts of deleted webhooks were not recorded"
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
                        break;
                    }
                    Err(e) if *shutdown.borrow() => {
                        tracing::error!(error = %e, count = records.len(), "cannot record attempts while stopping; the next start recovers them (outcome unknown)");
                        break;
                    }
                    Err(e) => {
                        errors += 1;
                        let pause = error_pause(errors);
                        tracing::error!(error = %e, count = records.len(), "cannot record attempts; retrying in {pause:?}");
                        // A graceful stop cuts the pause short (one last try).
                        tokio::select! {
                            _ = tokio::time::sleep(pause) => {}
                            _ = shutdown.wait_for(|s| *s) => {}
                        }
                    }
                }
            }
            self.wake.notify_one();
        }
    }
}
