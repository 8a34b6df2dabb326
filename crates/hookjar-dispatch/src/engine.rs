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
//! typed phases: `Claimed` (marked `inflight` in the store) → sent → `AttemptRecord`
//! (with the core's verdict) → recorded as delivered, pending again at an absolute
//! instant, or failed with the webhook deactivated. A delivery still `inflight` when
//! the process dies is put back in the queue on the next start (S19).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hookjar_core::{DeliveryRequest, RetryPolicy};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;

use crate::clock::{Clock, Micros};
use crate::deliver::Sender;
use crate::store::{AttemptRecord, Claimed, Store};

/// The most results written in one transaction.
const WRITE_BATCH: usize = 1024;
/// How long the scheduler waits after a store error before trying again.
const ERROR_PAUSE: Duration = Duration::from_secs(1);

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
        writer.spawn(Arc::clone(&self).write_records(records_rx));
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

        loop {
            if *shutdown.borrow() {
                break;
            }
            // Reap finished workers; wait for one if the pool is full.
            while let Some(finished) = workers.try_join_next() {
                done(&mut in_flight, finished);
            }
            if workers.len() >= self.concurrency {
                tokio::select! {
                    Some(finished) = workers.join_next() => {
                        done(&mut in_flight, finished);
                        continue;
                    }
                    _ = shutdown.changed() => break,
                }
            }

            // Claim what is due now and start one worker per delivery.
            let now = self.clock.now();
            let room = self.concurrency - workers.len();
            let claimed = match self
                .store
                .claim_due(now, room, self.per_webhook, in_flight.clone())
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "cannot claim due deliveries; retrying in 1s");
                    tokio::time::sleep(ERROR_PAUSE).await;
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
                    tracing::error!(error = %e, "cannot read the next due instant; retrying in 1s");
                    tokio::time::sleep(ERROR_PAUSE).await;
                    continue;
                }
            };
            let timer = async {
                match next {
                    Some(due) => tokio::time::sleep_until(self.clock.instant_for(due)).await,
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
        let sent = self.sender.send(&request).await;
        let finished_at = self.clock.now();
        #[cfg(feature = "faults")]
        let finished_at = crate::faults::finished_at(started_at, finished_at);
        let verdict = self.policy.classify(&sent.outcome, d.attempt);
        #[cfg(feature = "faults")]
        let verdict = crate::faults::verdict(verdict, &sent.outcome, &self.policy, d.attempt);
        let detail = self.policy.describe(&sent.outcome, d.attempt);
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
            started_at,
            finished_at,
            latency_us: i64::try_from(sent.latency.as_micros()).unwrap_or(i64::MAX),
            outcome: sent.outcome,
            verdict,
            detail,
        }
    }

    /// Writes attempt records in batches (one transaction each) and wakes the
    /// scheduler, since a retry may now be the earliest due delivery.
    async fn write_records(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<AttemptRecord>) {
        let mut batch = Vec::with_capacity(WRITE_BATCH);
        while rx.recv_many(&mut batch, WRITE_BATCH).await > 0 {
            let records = std::mem::take(&mut batch);
            let mut tries = 0;
            loop {
                match self.store.record(records.clone()).await {
                    Ok(effects) => {
                        if effects.skipped > 0 {
                            tracing::info!(
                                skipped = effects.skipped,
                                "attempts of deleted webhooks were not recorded"
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
                    Err(e) if tries < 3 => {
                        tries += 1;
                        tracing::error!(error = %e, "cannot record attempts; retrying");
                        tokio::time::sleep(ERROR_PAUSE).await;
                    }
                    Err(e) => {
                        // Put the deliveries back in the queue so they are attempted
                        // again (at-least-once, S19); if even that fails they stay
                        // inflight and are resumed on the next start.
                        tracing::error!(error = %e, count = records.len(), "giving up recording attempts; requeueing their deliveries");
                        let seqs = records.iter().map(|r| r.delivery_seq).collect();
                        if let Err(e) = self.store.requeue(seqs, self.clock.now()).await {
                            tracing::error!(error = %e, "cannot requeue; they resume on the next start");
                        }
                        break;
                    }
                }
            }
            self.wake.notify_one();
        }
    }
}
