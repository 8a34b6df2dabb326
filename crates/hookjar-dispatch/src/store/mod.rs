//! The dispatcher's store: one contract, two backends.
//!
//! [`Store`] is an enum over the backends — [`sqlite::SqliteStore`] (the embedded
//! default: `--db FILE`, `--in-memory`) and [`postgres::PgStore`] (`--db
//! postgres://…`, several dispatcher processes on one database). The engine, the API
//! and the conformance suite call [`Store`]'s methods and never learn which backend
//! runs. An enum rather than a trait object: the store's methods are `async`, and an
//! enum needs neither `async-trait` boxing nor generics through the engine and the
//! API, keeps the SQLite path exactly as it was (one `match` arm), and the contract
//! tests (`tests/store_contract.rs`) still run one suite against both.
//!
//! The store records what the engine and `hookjar-core` decided; it decides nothing
//! except the fan-out query of S12, whose rule (`Webhook::receives`) is the core's.
//!
//! # Tables (the same in both backends)
//! - `webhooks` — S3 resources; `seq` orders them oldest first (S1, S12); a
//!   `revision` that every update bumps.
//! - `events` — X1 events with their payload bytes, built once (X5).
//! - `deliveries` — one event to one webhook: `state` (`pending`, `inflight`,
//!   `delivered`, `failed`, `dropped`), attempts made, `due_at` (absolute
//!   dispatcher-time micros, S19). A partial index on `(webhook_seq, due_at)` for
//!   pending rows keeps "what is due next" one index step per webhook, with a million
//!   rows waiting. PostgreSQL adds `claimed_by` and `lease_until` (see
//!   [`postgres`]).
//! - `attempts` — the delivery log of X2. A row is written when an attempt is
//!   claimed, before its POST leaves (verdict `started`), and completed with the
//!   outcome; a row still `started` after a crash is completed as `unknown` and
//!   counts as made (S19).
//! - `meta` — the X3 timeline anchor and the generated API key.
//!
//! An attempt remembers the webhook revision it was claimed under, and its verdict
//! changes the webhook only if that revision still holds (S16, settled: a late answer
//! from before an update is logged as `stale`, not applied).
//!
//! One process owns a SQLite file store: [`OwnerLock`] holds an OS lock on
//! `FILE-owner` (named after the file's real path), and a file with a second name
//! (a hard link) is refused. A PostgreSQL store is shared: deliveries are claimed under leases.
//!
//! Migrations are versioned per backend ([`sqlite::MIGRATIONS`],
//! [`postgres::MIGRATIONS`]).

pub mod postgres;
pub mod sqlite;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hookjar_core::timeline::Timeline;
use hookjar_core::webhook::Headers;
use hookjar_core::{DeactivateReason, EventType, Outcome, Payload, Verdict, Webhook, WebhookPatch};
use serde::Serialize;
use tokio::sync::Notify;

use crate::clock::{Clock, Micros};
use crate::error::StoreError;

pub use postgres::{DEFAULT_LEASE, PgConfig, PgStore};
pub use sqlite::SqliteStore;

/// Where the store lives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StoreConfig {
    /// A throw-away database in memory (`--in-memory`).
    #[default]
    InMemory,
    /// A SQLite file (`--db FILE`), created when missing.
    File(PathBuf),
    /// A PostgreSQL database (`--db postgres://…`), shared by several dispatchers.
    Postgres(PgConfig),
}

impl StoreConfig {
    /// `--db`'s value: a `postgres://` or `postgresql://` URL, else a SQLite file.
    pub fn from_db_arg(db: &str) -> StoreConfig {
        if postgres::is_url(db) {
            StoreConfig::Postgres(PgConfig::new(db))
        } else {
            StoreConfig::File(PathBuf::from(db))
        }
    }
}

/// The OS lock that makes this process the one owner of a file store (S19). Held
/// until dropped; the OS releases it when the process dies, so a store left by a
/// crash (`kill -9`) is never blocked.
#[derive(Debug)]
pub struct OwnerLock {
    _file: std::fs::File,
}

impl OwnerLock {
    /// Locks `FILE-owner` next to a file store and writes this process's pid in it;
    /// `None` for an in-memory store. Fails at once, naming the owner's pid, when
    /// another process holds it (after up to a second when the holder is this
    /// process), and for a store file with more than one name (hard links), whose
    /// other names have locks of their own. Blocking: call it off the async
    /// executor.
    pub fn acquire(config: &StoreConfig) -> Result<Option<OwnerLock>, StoreError> {
        OwnerLock::acquire_within(config, OWN_PID_GRACE)
    }

    /// [`OwnerLock::acquire`] with another wait for a lock this process may hold
    /// for a moment (tests, which hold both ends, wait none).
    fn acquire_within(
        config: &StoreConfig,
        grace: std::time::Duration,
    ) -> Result<Option<OwnerLock>, StoreError> {
        use std::io::{Read as _, Seek as _, Write as _};
        let StoreConfig::File(path) = config else {
            return Ok(None);
        };
        // Named after the file's real path: a symlink to the store (or to its folder)
        // must find the same lock.
        let mut lock = real_path(path).into_os_string();
        lock.push("-owner");
        let lock = PathBuf::from(lock);
        let failed = |source| StoreError::Lock {
            path: path.clone(),
            lock: lock.clone(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock)
            .map_err(failed)?;
        // A holder with this process's own pid is either another dispatcher in this
        // process (refused below, after the grace) or a child process being spawned
        // by another thread, which holds a copy of every descriptor for the moment
        // before its exec closes them; that one lets go within milliseconds.
        let started = std::time::Instant::now();
        while !lock_exclusive(&file).map_err(failed)? {
            let mut pid = String::new();
            file.rewind().map_err(failed)?;
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim().to_owned();
            if pid == std::process::id().to_string() && started.elapsed() < grace {
                std::thread::sleep(std::time::Duration::from_millis(10));
                continue;
            }
            return Err(StoreError::Owned {
                path: path.clone(),
                owner: if pid.is_empty() {
                    "pid unknown".to_owned()
                } else {
                    format!("pid {pid}")
                },
            });
        }
        // A second name of the store (a hard link) has its own `FILE-owner`, which
        // this lock cannot see: a store with more than one name is refused.
        #[cfg(unix)]
        if let Ok(meta) = std::fs::metadata(path) {
            let links = std::os::unix::fs::MetadataExt::nlink(&meta);
            if links > 1 {
                return Err(StoreError::Linked {
                    path: path.clone(),
                    links,
                });
            }
        }
        file.set_len(0).map_err(failed)?;
        file.rewind().map_err(failed)?;
        writeln!(file, "{}", std::process::id()).map_err(failed)?;
        file.flush().map_err(failed)?;
        Ok(Some(OwnerLock { _file: file }))
    }
}

/// `path` with every symlink resolved: the file's own (followed link by link, so a
/// link to a store not created yet resolves too) and its folders'. Falls back to
/// what it could resolve. (A hard link is another name that no path leads back
/// from: [`OwnerLock::acquire`] refuses a store with more than one.)
fn real_path(path: &Path) -> PathBuf {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::read_link(&p) {
            Ok(target) if target.is_absolute() => p = target,
            Ok(target) => p = p.parent().unwrap_or(Path::new(".")).join(target),
            Err(_) => break,
        }
    }
    match (p.parent(), p.file_name()) {
        (Some(parent), Some(name)) => {
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            std::fs::canonicalize(parent).map_or(p.clone(), |d| d.join(name))
        }
        _ => p,
    }
}

/// How long [`OwnerLock::acquire`] waits when the holder's pid is this process's.
const OWN_PID_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// Takes an exclusive `flock(2)` on `file` without waiting: `Ok(false)` when another
/// open file description (another process) holds it.
#[cfg(unix)]
fn lock_exclusive(file: &std::fs::File) -> std::io::Result<bool> {
    use rustix::fs::{FlockOperation, flock};
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Elsewhere there is no lock: one owner per store is the user's to keep.
#[cfg(not(unix))]
fn lock_exclusive(_file: &std::fs::File) -> std::io::Result<bool> {
    Ok(true)
}

/// A handle to the store; clones share one connection (SQLite) or one pool
/// (PostgreSQL).
#[derive(Debug, Clone)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

/// Forwards a call to the backend that runs.
macro_rules! each {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match $self {
            Store::Sqlite(s) => s.$method($($arg),*).await,
            Store::Postgres(s) => s.$method($($arg),*).await,
        }
    };
}

/// How long an API call waits on PostgreSQL before it answers 503. A database that
/// stalls rather than refusing (a host gone without a reset, a hung link) would
/// otherwise hold each call until TCP gives up, minutes later.
pub const PG_API_TIMEOUT: Duration = Duration::from_secs(10);

/// [`each!`] for the calls the API makes on a client's behalf: on PostgreSQL, bounded
/// by [`PG_API_TIMEOUT`]. (Not the engine's: a claim whose commit was already sent
/// could still land after its timeout, leaving deliveries claimed that no attempt
/// knows of; the engine waits instead.) A write that timed out may still have been
/// stored, as after any lost answer: the client's retry is at-least-once.
macro_rules! each_api {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match $self {
            Store::Sqlite(s) => s.$method($($arg),*).await,
            Store::Postgres(s) => tokio::time::timeout(PG_API_TIMEOUT, s.$method($($arg),*))
                .await
                .unwrap_or_else(|_| {
                    Err(StoreError::Pool(format!(
                        "the PostgreSQL database did not answer within {} s",
                        PG_API_TIMEOUT.as_secs()
                    )))
                }),
        }
    };
}

impl Store {
    /// Opens (or creates) a SQLite store and brings its schema up to date
    /// (blocking; for a PostgreSQL configuration use [`Store::connect`]).
    pub fn open(config: &StoreConfig) -> Result<Store, StoreError> {
        if let StoreConfig::Postgres(pg) = config {
            return Err(StoreError::Config(format!(
                "{} is a PostgreSQL store; it is opened with Store::connect",
                pg.redacted()
            )));
        }
        SqliteStore::open(config).map(Store::Sqlite)
    }

    /// Opens any store and brings its schema up to date (SQLite on tokio's blocking
    /// pool; PostgreSQL through its pool, running the migrations under an advisory
    /// lock so that dispatchers starting together migrate once).
    pub async fn connect(config: &StoreConfig) -> Result<Store, StoreError> {
        match config {
            StoreConfig::Postgres(pg) => PgStore::connect(pg).await.map(Store::Postgres),
            other => {
                let other = other.clone();
                tokio::task::spawn_blocking(move || Store::open(&other))
                    .await
                    .map_err(|e| StoreError::Task(e.to_string()))?
            }
        }
    }

    /// The backend's name, for messages: `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Makes other processes' emits wake this process's engine (PostgreSQL's
    /// `LISTEN`); nothing to do on SQLite, where one process owns the store.
    pub fn subscribe(&self, wake: Arc<Notify>) {
        if let Store::Postgres(s) = self {
            s.subscribe(wake);
        }
    }

    /// How often the engine looks for attempts left in flight by a process that
    /// died (their leases expired): `None` on SQLite, where that only happens at
    /// start.
    pub fn recheck_every(&self) -> Option<Duration> {
        match self {
            Store::Sqlite(_) => None,
            Store::Postgres(s) => Some(s.recheck_every()),
        }
    }

    /// X3: the timeline to use from now on, given the wall time and the scale this
    /// process runs at — the stored anchor, a new anchor at the current dispatcher
    /// time if the scale changed, or a first anchor (saved in both cases).
    pub async fn timeline(&self, wall_now: Micros, scale: f64) -> Result<Timeline, StoreError> {
        each!(self.timeline(wall_now, scale))
    }

    /// The API key kept in the store, saving `candidate` as it when there is none
    /// (`hookjar serve` without `--api-key`: the same key after a restart).
    pub async fn kept_api_key(&self, candidate: String) -> Result<String, StoreError> {
        each!(self.kept_api_key(candidate))
    }

    /// Test hook: refuse (or accept again) every write, as a read-only or failing
    /// disk would (SQLite's `PRAGMA query_only`). Not used by the dispatcher itself;
    /// a PostgreSQL store answers [`StoreError::Config`].
    #[doc(hidden)]
    pub async fn refuse_writes(&self, refuse: bool) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.refuse_writes(refuse).await,
            Store::Postgres(_) => Err(StoreError::Config(
                "refuse_writes is a test hook of the SQLite store only".into(),
            )),
        }
    }

    // ----- webhooks (S1–S4) -----

    /// One page of webhooks, oldest first, and the total count (S1).
    pub async fn list_webhooks(
        &self,
        offset: u64,
        limit: u64,
    ) -> Result<(u64, Vec<Webhook>), StoreError> {
        each_api!(self.list_webhooks(offset, limit))
    }

    /// A webhook by id.
    pub async fn get_webhook(&self, id: String) -> Result<Option<Webhook>, StoreError> {
        each_api!(self.get_webhook(id))
    }

    /// Stores a new webhook (S2). The id is drawn here, from 64 random bits.
    pub async fn create_webhook(
        &self,
        new: hookjar_core::NewWebhook,
        now: Micros,
    ) -> Result<Webhook, StoreError> {
        each_api!(self.create_webhook(new, now))
    }

    /// Applies a validated patch (S4) with the core's `Webhook::apply`; `None` when the
    /// id is unknown. Deactivating drops the webhook's pending deliveries.
    pub async fn update_webhook(
        &self,
        id: String,
        patch: WebhookPatch,
    ) -> Result<Option<Webhook>, StoreError> {
        each_api!(self.update_webhook(id, patch))
    }

    /// Deactivates a webhook by an admin action (`ORG_DISABLED`, S18) and drops its
    /// pending deliveries.
    pub async fn deactivate_webhook(
        &self,
        id: String,
        reason: DeactivateReason,
    ) -> Result<Option<Webhook>, StoreError> {
        each_api!(self.deactivate_webhook(id, reason))
    }

    /// Deletes a webhook with its deliveries and their log; `false` when unknown.
    pub async fn delete_webhook(&self, id: String) -> Result<bool, StoreError> {
        each_api!(self.delete_webhook(id))
    }

    // ----- events and deliveries (X1, S12, S19) -----

    /// Stores an event and one delivery per qualifying webhook in one transaction,
    /// all due at `now`; returns how many deliveries were queued.
    ///
    /// Fan-out (S12): active webhooks that take this type or all types, oldest first;
    /// a `target_url` already served by an older webhook is skipped (compared in
    /// normalised form, `hookjar_core::webhook::normalise_url`).
    pub async fn emit(&self, event: NewEvent, now: Micros) -> Result<usize, StoreError> {
        each_api!(self.emit(event, now))
    }

    /// The earliest due instant of any pending delivery, leaving out the webhooks in
    /// `busy` (they are at their in-flight limit). One index step per webhook.
    pub async fn next_due(&self, busy: Vec<i64>) -> Result<Option<Micros>, StoreError> {
        each!(self.next_due(busy))
    }

    /// Claims up to `limit` deliveries due at `now`, earliest first, marking them
    /// `inflight` and writing each attempt ahead (S19): the attempt row (verdict
    /// `started`) and the delivery's attempt count are committed before any POST
    /// leaves, so a crash can neither repeat an attempt uncounted nor exceed 61.
    ///
    /// Fairness: each active webhook may have at most `per_webhook` attempts in
    /// flight from this process (`in_flight` says how many it has), so one slow
    /// endpoint cannot take the whole pool.
    pub async fn claim_due(
        &self,
        now: Micros,
        wall_now: Micros,
        limit: usize,
        per_webhook: usize,
        in_flight: HashMap<i64, usize>,
    ) -> Result<Vec<Claimed>, StoreError> {
        each!(self.claim_due(now, wall_now, limit, per_webhook, in_flight))
    }

    /// One scheduler turn: records the attempts that finished, then claims what is
    /// due (as [`Store::claim_due`]) and, when fewer than the limit were claimed,
    /// reads the earliest due instant of a webhook with room (as [`Store::next_due`]).
    ///
    /// On SQLite this is one transaction (group commit for the engine: a turn's
    /// records and claims share one commit). On PostgreSQL the records are committed
    /// first, on their own, so a failing claim never writes them twice. Records the
    /// store did not take come back in [`Settled::unrecorded`], to be tried again.
    pub async fn settle(&self, records: Vec<AttemptRecord>, claim: ClaimRequest) -> Settled {
        let failed = |records, e| Settled {
            effects: RecordEffects::default(),
            unrecorded: records,
            claimed: Err(e),
        };
        match self {
            Store::Sqlite(s) => match s.settle(records.clone(), claim).await {
                Ok((effects, claimed, next)) => Settled {
                    effects,
                    unrecorded: Vec::new(),
                    claimed: Ok((claimed, next)),
                },
                Err(e) => failed(records, e),
            },
            Store::Postgres(s) => {
                let effects = if records.is_empty() {
                    RecordEffects::default()
                } else {
                    match s.record(records.clone()).await {
                        Ok(effects) => effects,
                        Err(e) => return failed(records, e),
                    }
                };
                let claimed = async {
                    let claimed = s
                        .claim_due(
                            claim.now,
                            claim.wall_now,
                            claim.limit,
                            claim.per_webhook,
                            claim.in_flight.clone(),
                        )
                        .await?;
                    let next = if claimed.len() < claim.limit {
                        s.next_due(claim.busy_after(&claimed)).await?
                    } else {
                        None
                    };
                    Ok((claimed, next))
                }
                .await;
                Settled {
                    effects,
                    unrecorded: Vec::new(),
                    claimed,
                }
            }
        }
    }

    /// Records a batch of attempts and applies their verdicts in one transaction:
    /// delivered; pending again at `finished_at + delay` (S14); or failed with the
    /// webhook deactivated and its other pending deliveries dropped (S15, S16, S18).
    ///
    /// A verdict changes the webhook only if the webhook's revision is still the one
    /// the attempt was claimed under; otherwise the attempt is logged as `stale` and
    /// its delivery ends without touching the webhook (S16, settled).
    pub async fn record(&self, batch: Vec<AttemptRecord>) -> Result<RecordEffects, StoreError> {
        each!(self.record(batch))
    }

    /// The attempts that were started and never completed: the dispatcher stopped
    /// during their POST (S19). The caller records each as `unknown`. On
    /// PostgreSQL only attempts whose lease expired are returned (their process
    /// died), taken over by this process.
    pub async fn interrupted(&self) -> Result<Vec<Interrupted>, StoreError> {
        each!(self.interrupted())
    }

    /// Drops the pending deliveries of inactive webhooks (left by a crash between a
    /// deactivation and its bookkeeping).
    pub async fn drop_pending_of_inactive(&self) -> Result<usize, StoreError> {
        each!(self.drop_pending_of_inactive())
    }

    /// How many deliveries are pending or in flight.
    pub async fn pending_count(&self) -> Result<u64, StoreError> {
        each_api!(self.pending_count())
    }

    /// One page of a webhook's deliveries with their attempts (X2), oldest first;
    /// `None` when the webhook is unknown.
    pub async fn deliveries_of(
        &self,
        webhook: String,
        offset: u64,
        limit: u64,
        timeline: Timeline,
    ) -> Result<Option<(u64, Vec<DeliveryView>)>, StoreError> {
        each_api!(self.deliveries_of(webhook, offset, limit, timeline))
    }

    /// Queues the same event bytes again to the same webhook as a new delivery (X2).
    pub async fn redeliver(&self, delivery: String, now: Micros) -> Result<Redeliver, StoreError> {
        each_api!(self.redeliver(delivery, now))
    }
}

/// What the scheduler claims in one turn ([`Store::settle`]).
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    /// Dispatcher time (X3): deliveries due at or before it are claimed.
    pub now: Micros,
    /// Wall time, logged with the attempts written ahead.
    pub wall_now: Micros,
    /// The most deliveries to claim (the room left in the pool).
    pub limit: usize,
    /// The most attempts in flight to one webhook.
    pub per_webhook: usize,
    /// Attempts in flight per webhook seq.
    pub in_flight: HashMap<i64, usize>,
}

impl ClaimRequest {
    /// The webhooks at their in-flight limit once `claimed` are in flight too.
    pub fn busy_after(&self, claimed: &[Claimed]) -> Vec<i64> {
        let mut in_flight = self.in_flight.clone();
        for c in claimed {
            *in_flight.entry(c.webhook_seq).or_insert(0) += 1;
        }
        in_flight
            .into_iter()
            .filter(|(_, n)| *n >= self.per_webhook)
            .map(|(seq, _)| seq)
            .collect()
    }
}

/// What one scheduler turn did ([`Store::settle`]).
#[derive(Debug)]
pub struct Settled {
    /// The effects of the records that were written.
    pub effects: RecordEffects,
    /// Records the store did not take, to be tried again on the next turn (their
    /// deliveries stay `inflight` meanwhile).
    pub unrecorded: Vec<AttemptRecord>,
    /// The deliveries claimed and, when fewer than the limit, the earliest due
    /// instant of a webhook with room left; or why the turn failed.
    pub claimed: Result<(Vec<Claimed>, Option<Micros>), StoreError>,
}

/// A delivery claimed for sending: everything the engine needs for one attempt.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub delivery_seq: i64,
    pub delivery_id: String,
    /// The attempt about to be made: 0 for the first POST, n for retry n.
    pub attempt: u32,
    /// The webhook as it is now (its URL, auth and headers are used, S12); shared
    /// by the deliveries of one claim.
    pub webhook: Arc<Webhook>,
    pub webhook_seq: i64,
    /// The webhook's revision when claimed (S16: the verdict applies to it only).
    pub revision: i64,
    pub event_type: String,
    pub body: Payload,
}

/// What one attempt came to, as the engine records it.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub delivery_seq: i64,
    pub webhook_seq: i64,
    pub attempt: u32,
    /// The webhook's revision when the attempt was claimed.
    pub revision: i64,
    /// Dispatcher time (X3) when the POST started.
    pub started_at: Micros,
    /// Wall time when the POST started.
    pub wall_at: Micros,
    pub finished_at: Micros,
    pub latency_us: i64,
    pub outcome: Outcome,
    pub verdict: Verdict,
    /// The log line of `RetryPolicy::describe`.
    pub detail: String,
    /// The outcome is unknown: the dispatcher stopped during the attempt (S19). It
    /// counts as made and is logged with the verdict `unknown`.
    pub unknown: bool,
}

/// The columns of an attempt's log row that both backends derive from an
/// [`AttemptRecord`] the same way.
pub(crate) struct AttemptColumns {
    /// The HTTP status, when there was one.
    pub status: Option<u16>,
    /// Why there was no status (`outcome unknown` after a crash).
    pub error: Option<String>,
    /// When the retry is due, for a retry verdict.
    pub next_at: Option<Micros>,
    /// The verdict's label, or `unknown`.
    pub label: &'static str,
}

impl AttemptRecord {
    /// The log row's derived columns.
    pub(crate) fn columns(&self) -> AttemptColumns {
        let (status, error) = match &self.outcome {
            Outcome::Status { code } => (Some(*code), None),
            _ if self.unknown => (None, Some("outcome unknown".to_owned())),
            other => (None, Some(other.to_string())),
        };
        let next_at = match self.verdict {
            Verdict::RetryAfter { delay } => {
                Some(self.finished_at.saturating_add(Clock::micros_of(delay)))
            }
            _ => None,
        };
        let label = if self.unknown {
            "unknown"
        } else {
            self.verdict.label()
        };
        AttemptColumns {
            status,
            error,
            next_at,
            label,
        }
    }
}

/// An attempt that was started (written ahead) and never completed: the
/// dispatcher stopped during its POST.
#[derive(Debug, Clone)]
pub struct Interrupted {
    pub delivery_seq: i64,
    pub webhook_seq: i64,
    pub attempt: u32,
    pub revision: i64,
    pub started_at: Micros,
    pub wall_at: Option<Micros>,
}

/// The effect of recording a batch: webhooks deactivated by it.
#[derive(Debug, Default)]
pub struct RecordEffects {
    /// `(webhook id, reason, deliveries dropped)` for each deactivation.
    pub deactivated: Vec<(String, DeactivateReason, usize)>,
    /// Records whose delivery no longer exists (its webhook was deleted).
    pub skipped: usize,
    /// Verdicts not applied because the webhook changed during the attempt (S16).
    pub stale: usize,
    /// Results not recorded because this process no longer held the delivery's
    /// claim: it was frozen past its lease and another process took the attempt over
    /// (PostgreSQL, S19).
    pub lost: usize,
}

/// One attempt in the delivery log (X2).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AttemptView {
    /// 0 for the first POST, n for retry n.
    pub attempt: u32,
    /// When the POST started, in dispatcher time (X3: under a time scale this runs
    /// ahead of the wall clock; `next_attempt_at − at` is the S14 wait).
    pub at: String,
    /// When the POST started on the wall clock (null in logs from before hookjar
    /// recorded it).
    pub wall_at: Option<String>,
    /// The HTTP status, when one was received.
    pub status: Option<u16>,
    /// The transport error, when no status was received.
    pub error: Option<String>,
    /// Milliseconds from sending to the answer (or the error).
    pub latency_ms: f64,
    /// `delivered`, `retry` or `deactivate`; `started` while the POST is in flight;
    /// `unknown` when the dispatcher stopped during it (it counts as made, S19).
    pub verdict: String,
    /// The webhook was updated while this attempt was in flight, so its verdict was
    /// logged but not applied to the webhook (S16).
    pub stale: bool,
    /// A human line, e.g. `HTTP 503 on retry 60; deactivated (RETRY_COUNT)`.
    pub detail: String,
    /// When the next attempt is due, after a `retry` verdict.
    pub next_attempt_at: Option<String>,
}

/// One delivery with its attempts (X2).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeliveryView {
    /// The delivery's id (for `POST /v1/deliveries/{id}/redeliver`).
    pub id: String,
    /// The event's id, as `POST /v1/events` returned it.
    pub event: String,
    pub event_type: String,
    /// X5's correlation key: the digest of the body bytes, identical on every attempt.
    pub digest: String,
    /// `pending`, `inflight`, `delivered`, `failed` or `dropped`.
    pub state: String,
    pub created_at: String,
    /// When the next attempt is due, while pending (dispatcher time, X3).
    pub next_attempt_at: Option<String>,
    /// When the next attempt is due on the wall clock, while pending.
    pub next_attempt_wall_at: Option<String>,
    /// Why it ended without delivery, when it did.
    pub note: Option<String>,
    pub attempts: Vec<AttemptView>,
}

/// The outcome of a redeliver request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redeliver {
    /// Queued as a new delivery with this id.
    Queued(String),
    /// No such delivery.
    NotFound,
    /// The webhook is inactive (its id).
    Inactive(String),
}

/// An event to store with its fan-out (X1, S12, S19).
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: String,
    pub event_type: EventType,
    pub body: Payload,
}

/// `wall dispatcher scale`, as the X3 anchor is kept in `meta`.
pub(crate) fn parse_timeline(text: &str) -> Option<Timeline> {
    let mut parts = text.split_whitespace();
    let wall = parts.next()?.parse().ok()?;
    let dispatcher = parts.next()?.parse().ok()?;
    let scale: f64 = parts.next()?.parse().ok()?;
    (parts.next().is_none() && scale.is_finite() && scale > 0.0).then_some(Timeline {
        wall,
        dispatcher,
        scale,
    })
}

pub(crate) fn headers_json(h: &Headers) -> String {
    serde_json::to_string(h).expect("a string map serialises")
}

/// Where the store lives, for messages (a PostgreSQL URL without its password).
pub fn describe(config: &StoreConfig) -> String {
    match config {
        StoreConfig::InMemory => "in memory (lost on exit)".to_owned(),
        StoreConfig::File(p) => display_path(p),
        StoreConfig::Postgres(pg) => format!(
            "PostgreSQL {} (shared: deliveries are claimed under {} s leases)",
            pg.redacted(),
            pg.lease.as_secs()
        ),
    }
}

fn display_path(p: &Path) -> String {
    p.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One owner per store file, however the file is named: a symlink to it (or to
    /// its folder) names the same store and finds it owned (two owners would each
    /// resume the other's attempts in flight and send them twice).
    #[cfg(unix)]
    #[test]
    fn a_symlink_to_an_owned_store_finds_it_owned() {
        let dir = std::env::temp_dir().join(format!(
            "hookjar-owner-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(dir.join("real")).unwrap();
        let db = dir.join("real").join("h.db");
        std::fs::write(&db, b"").unwrap();
        std::os::unix::fs::symlink(&db, dir.join("link.db")).unwrap();
        std::os::unix::fs::symlink(dir.join("real"), dir.join("folder")).unwrap();

        let held = OwnerLock::acquire(&StoreConfig::File(db.clone())).unwrap();
        assert!(held.is_some());
        for other in [dir.join("link.db"), dir.join("folder").join("h.db")] {
            let err = OwnerLock::acquire_within(&StoreConfig::File(other.clone()), Duration::ZERO)
                .unwrap_err();
            assert!(
                matches!(err, StoreError::Owned { .. }),
                "{}: {err}",
                other.display()
            );
        }
        drop(held);
        // A store that does not exist yet: its folder is resolved.
        let fresh =
            OwnerLock::acquire(&StoreConfig::File(dir.join("folder").join("new.db"))).unwrap();
        assert!(fresh.is_some());
        assert!(dir.join("real").join("new.db-owner").exists());
        drop(fresh);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A hard link is a second name of the same file, with its own `FILE-owner`: a
    /// dispatcher starting through either name must be refused, as no lock can tell
    /// whether the other name is in use.
    #[cfg(unix)]
    #[test]
    fn a_store_with_a_hard_link_is_refused() {
        let dir = std::env::temp_dir().join(format!(
            "hookjar-owner-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("h.db");
        let held = OwnerLock::acquire(&StoreConfig::File(db.clone())).unwrap();
        assert!(held.is_some());
        drop(SqliteStore::open(&StoreConfig::File(db.clone())).unwrap());
        std::fs::hard_link(&db, dir.join("twin.db")).unwrap();

        for name in [dir.join("twin.db"), db.clone()] {
            let err = OwnerLock::acquire_within(&StoreConfig::File(name.clone()), Duration::ZERO)
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    StoreError::Owned { .. } | StoreError::Linked { links: 2, .. }
                ),
                "{}: {err}",
                name.display()
            );
        }
        drop(held);
        let err = OwnerLock::acquire(&StoreConfig::File(dir.join("twin.db"))).unwrap_err();
        assert!(matches!(err, StoreError::Linked { links: 2, .. }), "{err}");
        let message = err.to_string();
        assert!(
            message.contains("2 names") && message.contains("one name"),
            "says what is wrong and what to do: {message}"
        );
        // With one name again it starts.
        std::fs::remove_file(dir.join("twin.db")).unwrap();
        assert!(
            OwnerLock::acquire(&StoreConfig::File(db.clone()))
                .unwrap()
                .is_some()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
