//! The SQLite backend: the embedded default (`--db FILE`, `--in-memory`).
//!
//! One connection (WAL journal for files) behind a mutex; every call runs on tokio's
//! blocking pool through [`SqliteStore::call`], so the executor never waits on disk. (On a
//! paused test clock, a running blocking task also stops tokio from jumping time
//! forward while the store works, which keeps virtual-time tests exact.)
//!
//! One process owns a file store ([`super::OwnerLock`]); the tables are described in
//! [`super`]. Schema versions live in [`MIGRATIONS`]; `PRAGMA user_version` says how
//! many ran.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hookjar_core::timeline::Timeline;
use hookjar_core::webhook::{Headers, normalise_url, webhook_id};
use hookjar_core::{DeactivateReason, EventType, Payload, Verdict, Webhook, WebhookPatch};
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use tokio::sync::oneshot;

use super::{
    AttemptRecord, AttemptView, ClaimRequest, Claimed, DeliveryView, Interrupted, NewEvent,
    RecordEffects, Redeliver, StoreConfig, headers_json, parse_timeline,
};
use crate::clock::Micros;
use crate::error::StoreError;

/// One schema migration: SQL, or code where the SQL depends on the data.
enum Migration {
    Sql(&'static str),
    Code(fn(&rusqlite::Transaction<'_>) -> rusqlite::Result<()>),
}

/// Schema migrations, in order; `PRAGMA user_version` is how many have run.
const MIGRATIONS: &[Migration] = &[
    // 1: the first schema.
    Migration::Sql(
        "
    CREATE TABLE webhooks (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        target_url TEXT NOT NULL,
        active INTEGER NOT NULL,
        deactivate_reason TEXT,
        event_type TEXT,
        basic_auth_username TEXT NOT NULL,
        basic_auth_password TEXT NOT NULL,
        additional_headers TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        event_type TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        digest TEXT NOT NULL,
        body BLOB NOT NULL
    );
    CREATE TABLE deliveries (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        event_seq INTEGER NOT NULL REFERENCES events(seq) ON DELETE CASCADE,
        webhook_seq INTEGER NOT NULL REFERENCES webhooks(seq) ON DELETE CASCADE,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        due_at INTEGER,
        created_at INTEGER NOT NULL,
        finished_at INTEGER,
        note TEXT
    );
    CREATE INDEX deliveries_due ON deliveries(due_at) WHERE state = 'pending';
    CREATE INDEX deliveries_webhook ON deliveries(webhook_seq, state);
    CREATE INDEX deliveries_inflight ON deliveries(state) WHERE state = 'inflight';
    CREATE TABLE attempts (
        delivery_seq INTEGER NOT NULL REFERENCES deliveries(seq) ON DELETE CASCADE,
        n INTEGER NOT NULL,
        started_at INTEGER NOT NULL,
        latency_us INTEGER NOT NULL,
        status INTEGER,
        error TEXT,
        verdict TEXT NOT NULL,
        detail TEXT NOT NULL,
        next_attempt_at INTEGER,
        PRIMARY KEY (delivery_seq, n)
    ) WITHOUT ROWID;
    ",
    ),
    // 2: per-webhook due order, for fair claiming (at most N in flight per webhook)
    // that costs an index step per webhook whatever the backlog.
    Migration::Sql(
        "
    DROP INDEX deliveries_due;
    CREATE INDEX deliveries_webhook_due ON deliveries(webhook_seq, due_at) WHERE state = 'pending';
    ",
    ),
    // 3: issue #8 — webhook revisions (stale verdicts), write-ahead attempts with
    // wall time, the X3 anchor and the kept API key.
    Migration::Sql(
        "
    ALTER TABLE webhooks ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE attempts ADD COLUMN wall_at INTEGER;
    ALTER TABLE attempts ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE attempts ADD COLUMN stale INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    ",
    ),
    // 4: a delivery's webhook index without its state. A state change (pending →
    // inflight → delivered) no longer moves the delivery's entry in it, twice per
    // attempt; listing a webhook's deliveries reads them in `seq` order straight from
    // it, and the pending ones of a webhook are in `deliveries_webhook_due`.
    Migration::Sql(
        "
    DROP INDEX deliveries_webhook;
    CREATE INDEX deliveries_webhook ON deliveries(webhook_seq);
    ",
    ),
    // 5: no index of random ids ([`seq_derived_ids`]).
    Migration::Code(seq_derived_ids),
];

/// Migration 5. An index of random ids takes every insert at a random place: with
/// four webhooks, four deliveries' ids per event land on four random pages of
/// `deliveries`' `UNIQUE(id)` index (docs/performance.md: without that, ~11 % more
/// deliveries per second). So `deliveries` is rebuilt without `UNIQUE` on `id`, and
/// a new delivery's id is derived from its `seq` ([`hookjar_core::ids::SeqIds`], with
/// a key drawn here and kept in `meta`): unique by construction, as random-looking as
/// before, and the redeliver call finds the row by the `seq` its id decodes to. The
/// deliveries made before keep their random ids, under a unique index of their own
/// (`seq <=` the last of them), where the redeliver call looks when decoding does not
/// find the id. (`events` keeps its unique index: one id per event, and the API draws
/// it before the store numbers the row.)
///
/// SQLite's way to change a table's constraints: a new table, the rows copied, the
/// old one dropped, the new one renamed, with foreign keys off ([`migrate`] checks
/// them before the commit). The `AUTOINCREMENT` counter is carried over, so no `seq`
/// (and so no derived id) is ever given twice.
fn seq_derived_ids(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    let counter: Option<i64> = tx
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'deliveries'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    let legacy: i64 = tx.query_row("SELECT COALESCE(MAX(seq), 0) FROM deliveries", [], |r| {
        r.get(0)
    })?;
    tx.execute_batch(
        "
        CREATE TABLE deliveries_new (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL,
            event_seq INTEGER NOT NULL REFERENCES events(seq) ON DELETE CASCADE,
            webhook_seq INTEGER NOT NULL REFERENCES webhooks(seq) ON DELETE CASCADE,
            state TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            due_at INTEGER,
            created_at INTEGER NOT NULL,
            finished_at INTEGER,
            note TEXT
        );
        INSERT INTO deliveries_new (seq, id, event_seq, webhook_seq, state, attempts, due_at,
                                    created_at, finished_at, note)
            SELECT seq, id, event_seq, webhook_seq, state, attempts, due_at,
                   created_at, finished_at, note FROM deliveries;
        DROP TABLE deliveries;
        ALTER TABLE deliveries_new RENAME TO deliveries;
        CREATE INDEX deliveries_webhook_due ON deliveries(webhook_seq, due_at) WHERE state = 'pending';
        CREATE INDEX deliveries_webhook ON deliveries(webhook_seq);
        CREATE INDEX deliveries_inflight ON deliveries(state) WHERE state = 'inflight';
        ",
    )?;
    if let Some(old) = counter {
        let updated = tx.execute(
            "UPDATE sqlite_sequence SET seq = MAX(seq, ?1) WHERE name = 'deliveries'",
            [old],
        )?;
        if updated == 0 {
            tx.execute(
                "INSERT INTO sqlite_sequence (name, seq) VALUES ('deliveries', ?1)",
                [old],
            )?;
        }
    }
    if legacy > 0 {
        // A literal bound: SQLite uses a partial index only for a query whose WHERE
        // implies the index's, which a bound parameter cannot.
        tx.execute_batch(&format!(
            "CREATE UNIQUE INDEX deliveries_legacy_id ON deliveries(id) WHERE seq <= {legacy};"
        ))?;
    }
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('delivery_id_key', ?1), ('legacy_delivery_ids', ?2)",
        params![rand::random::<u64>().to_string(), legacy.to_string()],
    )?;
    Ok(())
}

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// A handle to the store; clones share one connection and one emit queue.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    ids: DeliveryIds,
    emits: Arc<Mutex<EmitQueue>>,
}

/// Emits waiting for the group writer ([`SqliteStore::emit`]).
#[derive(Default)]
struct EmitQueue {
    waiting: Vec<QueuedEmit>,
    /// An [`EmitWriter`] is running and takes `waiting` before it stops, so an emit
    /// that finds this set only queues.
    writing: bool,
    /// Groups taken so far (tests check that waiting emits share a transaction).
    #[cfg(test)]
    groups: usize,
}

/// One caller's event, and where its answer goes.
struct QueuedEmit {
    event: NewEvent,
    now: Micros,
    answer: oneshot::Sender<Result<usize, StoreError>>,
}

/// The task that writes queued emits, a group per transaction, until none wait.
///
/// It runs on tokio's blocking pool like every other store call (so a paused test
/// clock does not jump while events are being stored). It takes the connection
/// before the queue: while it waits for the connection (the engine claiming or
/// recording), more emits join the group.
struct EmitWriter {
    store: SqliteStore,
    /// Set when the writer stopped because the queue was empty.
    finished: bool,
}

impl EmitWriter {
    fn run(mut self) {
        loop {
            let mut conn = lock(&self.store.conn);
            let group = {
                let mut queue = lock(&self.store.emits);
                if queue.waiting.is_empty() {
                    queue.writing = false;
                    self.finished = true;
                    return;
                }
                #[cfg(test)]
                {
                    queue.groups += 1;
                }
                std::mem::take(&mut queue.waiting)
            };
            let results = emit_group(&mut conn, &self.store.ids, &group);
            drop(conn);
            for (queued, result) in group.into_iter().zip(results) {
                // A caller that went away (its client hung up) needs no answer; its
                // event is stored all the same, as before group commit.
                let _ = queued.answer.send(result);
            }
        }
    }
}

impl Drop for EmitWriter {
    /// A writer that panicked, or never ran because the runtime was shutting down:
    /// the emits still waiting are answered with an error (their senders drop) and
    /// the next emit starts a new writer.
    fn drop(&mut self) {
        if !self.finished {
            let mut queue = lock(&self.store.emits);
            queue.writing = false;
            queue.waiting.clear();
        }
    }
}

/// Creates the store file, empty, readable and writable by its owner only, unless it
/// exists (then it keeps its mode). It holds webhook passwords in clear (S3: they
/// are sent with every delivery), and SQLite gives its WAL and shared-memory files
/// the database file's mode.
fn create_private(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Locks a mutex. A poisoned lock only means another call panicked mid-way; SQLite
/// rolled its transaction back, so what the mutex guards is still sound.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (or creates) the store and brings its schema up to date.
    pub fn open(config: &StoreConfig) -> Result<SqliteStore, StoreError> {
        let (conn, path) = match config {
            StoreConfig::InMemory => (Connection::open_in_memory(), PathBuf::from(":memory:")),
            StoreConfig::File(p) => {
                create_private(p).map_err(|source| StoreError::Create {
                    path: p.clone(),
                    source,
                })?;
                (Connection::open(p), p.clone())
            }
            StoreConfig::Postgres(pg) => {
                return Err(StoreError::Config(format!(
                    "{} is a PostgreSQL store, not a SQLite file",
                    pg.redacted()
                )));
            }
        };
        let conn = conn.map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        prepare(&conn, config).map_err(|source| StoreError::Open { path, source })?;
        migrate(&conn)?;
        let ids = DeliveryIds::load(&conn)?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            ids,
            emits: Arc::default(),
        })
    }

    /// X3: the timeline to use from now on, given the wall time and the scale this
    /// process runs at — the stored anchor, a new anchor at the current dispatcher
    /// time if the scale changed, or a first anchor (saved in both cases).
    pub async fn timeline(&self, wall_now: Micros, scale: f64) -> Result<Timeline, StoreError> {
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let stored: Option<String> = tx
                .query_row("SELECT value FROM meta WHERE key = 'timeline'", [], |r| {
                    r.get(0)
                })
                .optional()?;
            let stored = match stored {
                None => None,
                Some(text) => Some(parse_timeline(&text).ok_or_else(|| StoreError::Corrupt {
                    table: "meta",
                    column: "timeline",
                    detail: text.clone(),
                })?),
            };
            let (timeline, save) = Timeline::resume(stored, wall_now, scale);
            if save {
                tx.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('timeline', ?1)",
                    [format!(
                        "{} {} {}",
                        timeline.wall, timeline.dispatcher, timeline.scale
                    )],
                )?;
            }
            tx.commit()?;
            Ok(timeline)
        })
        .await
    }

    /// The API key kept in the store, saving `candidate` as it when there is none
    /// (`hookjar serve` without `--api-key`: the same key after a restart).
    pub async fn kept_api_key(&self, candidate: String) -> Result<String, StoreError> {
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('api_key', ?1)",
                [candidate],
            )?;
            let key: String =
                tx.query_row("SELECT value FROM meta WHERE key = 'api_key'", [], |r| {
                    r.get(0)
                })?;
            tx.commit()?;
            Ok(key)
        })
        .await
    }

    /// Test hook: refuse (or accept again) every write, as a read-only or failing
    /// disk would (`PRAGMA query_only`). Not used by the dispatcher itself.
    #[doc(hidden)]
    pub async fn refuse_writes(&self, refuse: bool) -> Result<(), StoreError> {
        self.call(move |c| Ok(c.pragma_update(None, "query_only", refuse)?))
            .await
    }

    /// Runs `f` with the connection on tokio's blocking pool.
    async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || f(&mut lock(&conn)))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }

    // ----- webhooks (S1–S4) -----

    /// One page of webhooks, oldest first, and the total count (S1).
    pub async fn list_webhooks(
        &self,
        offset: u64,
        limit: u64,
    ) -> Result<(u64, Vec<Webhook>), StoreError> {
        self.call(move |c| {
            let count: i64 = c.query_row("SELECT COUNT(*) FROM webhooks", [], |r| r.get(0))?;
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {WEBHOOK_COLUMNS} FROM webhooks ORDER BY seq LIMIT ?1 OFFSET ?2"
            ))?;
            let rows = stmt
                .query_map(params![limit as i64, offset as i64], read_webhook)?
                .collect::<Result<Vec<_>, _>>()?;
            let hooks = rows
                .into_iter()
                .map(|r| r.map(|(_, w)| w))
                .collect::<Result<_, _>>()?;
            Ok((count as u64, hooks))
        })
        .await
    }

    /// A webhook by id.
    pub async fn get_webhook(&self, id: String) -> Result<Option<Webhook>, StoreError> {
        self.call(move |c| Ok(find_webhook(c, &id)?.map(|(_, w)| w)))
            .await
    }

    /// Stores a new webhook (S2). The id is drawn here, from 64 random bits.
    pub async fn create_webhook(
        &self,
        new: hookjar_core::NewWebhook,
        now: Micros,
    ) -> Result<Webhook, StoreError> {
        self.call(move |c| {
            let webhook = Webhook::create(webhook_id(rand::random()), new);
            c.execute(
                "INSERT INTO webhooks (id, target_url, active, deactivate_reason, event_type,
                    basic_auth_username, basic_auth_password, additional_headers, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    webhook.id,
                    webhook.target_url,
                    webhook.active,
                    webhook.deactivate_reason.map(|r| r.as_str()),
                    webhook.event_type.map(|t| t.as_str()),
                    webhook.basic_auth_username,
                    webhook.basic_auth_password,
                    headers_json(&webhook.additional_headers),
                    now,
                ],
            )?;
            Ok(webhook)
        })
        .await
    }

    /// Applies a validated patch (S4) with the core's `Webhook::apply`; `None` when the
    /// id is unknown.
    pub async fn update_webhook(
        &self,
        id: String,
        patch: WebhookPatch,
    ) -> Result<Option<Webhook>, StoreError> {
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some((seq, mut webhook)) = find_webhook(&tx, &id)? else {
                return Ok(None);
            };
            webhook.apply(patch);
            write_webhook(&tx, seq, &webhook)?;
            if !webhook.active {
                // Nothing is POSTed to an inactive webhook; re-activation does not
                // bring old deliveries back.
                drop_pending(&tx, seq, "webhook deactivated by an update")?;
            }
            tx.commit()?;
            Ok(Some(webhook))
        })
        .await
    }

    /// Deactivates a webhook by an admin action (`ORG_DISABLED`, S18) and drops its
    /// pending deliveries.
    pub async fn deactivate_webhook(
        &self,
        id: String,
        reason: DeactivateReason,
    ) -> Result<Option<Webhook>, StoreError> {
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some((seq, mut webhook)) = find_webhook(&tx, &id)? else {
                return Ok(None);
            };
            webhook.deactivate(reason);
            write_webhook(&tx, seq, &webhook)?;
            drop_pending(&tx, seq, &format!("webhook deactivated ({reason})"))?;
            tx.commit()?;
            Ok(Some(webhook))
        })
        .await
    }

    /// Deletes a webhook with its deliveries and their log; `false` when unknown.
    pub async fn delete_webhook(&self, id: String) -> Result<bool, StoreError> {
        self.call(move |c| Ok(c.execute("DELETE FROM webhooks WHERE id = ?1", [id])? > 0))
            .await
    }

    // ----- events and deliveries (X1, S12, S19) -----

    /// Stores an event and one delivery per qualifying webhook, all due at `now`;
    /// returns how many deliveries were queued. The answer comes after the commit.
    ///
    /// Group commit: concurrent emits queue up for one writer task, which stores
    /// everything waiting in one transaction (one savepoint per event, so a failing
    /// event fails alone) and then answers each caller with its own result. While a
    /// group is being written the next one gathers, so under load a commit serves
    /// many events; alone, an emit is its own group and waits for nobody.
    ///
    /// Fan-out (S12): active webhooks that take this type or all types, oldest first;
    /// a `target_url` already served by an older webhook is skipped (compared in
    /// normalised form, `hookjar_core::webhook::normalise_url`).
    pub async fn emit(&self, event: NewEvent, now: Micros) -> Result<usize, StoreError> {
        let (answer, answered) = oneshot::channel();
        let start_writer = {
            let mut queue = lock(&self.emits);
            queue.waiting.push(QueuedEmit { event, now, answer });
            !std::mem::replace(&mut queue.writing, true)
        };
        if start_writer {
            let writer = EmitWriter {
                store: self.clone(),
                finished: false,
            };
            tokio::task::spawn_blocking(move || writer.run());
        }
        answered.await.map_err(|_| {
            StoreError::Task("the emit writer stopped before answering; emit again".into())
        })?
    }

    /// The earliest due instant of any pending delivery, leaving out the webhooks in
    /// `busy` (they are at their in-flight limit). One index step per webhook.
    pub async fn next_due(&self, busy: Vec<i64>) -> Result<Option<Micros>, StoreError> {
        self.call(move |c| next_due_in(c, &busy)).await
    }

    /// Claims up to `limit` deliveries due at `now`, earliest first, marking them
    /// `inflight` and writing each attempt ahead (S19): the attempt row (verdict
    /// `started`) and the delivery's attempt count are committed before any POST
    /// leaves, so a crash can neither repeat an attempt uncounted nor exceed 61.
    ///
    /// Fairness: each active webhook may have at most `per_webhook` attempts in
    /// flight (`in_flight` says how many it has), so one slow endpoint cannot take the
    /// whole pool. Each webhook's due deliveries are read from the
    /// `(webhook_seq, due_at)` index, so the cost does not grow with the number of
    /// deliveries waiting.
    pub async fn claim_due(
        &self,
        now: Micros,
        wall_now: Micros,
        limit: usize,
        per_webhook: usize,
        in_flight: HashMap<i64, usize>,
    ) -> Result<Vec<Claimed>, StoreError> {
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let claimed = claim_in(&tx, now, wall_now, limit, per_webhook, &in_flight)?;
            tx.commit()?;
            Ok(claimed)
        })
        .await
    }

    /// Records a batch of attempts and applies their verdicts in one transaction:
    /// delivered; pending again at `finished_at + delay` (S14); or failed with the
    /// webhook deactivated and its other pending deliveries dropped (S15, S16, S18).
    ///
    /// A verdict changes the webhook only if the webhook's revision is still the one
    /// the attempt was claimed under; otherwise the attempt is logged as `stale` and
    /// its delivery ends without touching the webhook (S16, settled).
    pub async fn record(&self, batch: Vec<AttemptRecord>) -> Result<RecordEffects, StoreError> {
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let effects = record_in(&tx, &batch)?;
            tx.commit()?;
            Ok(effects)
        })
        .await
    }

    /// One scheduler turn in one transaction: records `records`, claims what is due
    /// (as [`SqliteStore::claim_due`]) and, when fewer than `limit` were claimed, finds
    /// the earliest due instant of a webhook with room left (as
    /// [`SqliteStore::next_due`]). One hop to the blocking pool and one commit
    /// instead of three.
    pub async fn settle(
        &self,
        records: Vec<AttemptRecord>,
        claim: ClaimRequest,
    ) -> Result<(RecordEffects, Vec<Claimed>, Option<Micros>), StoreError> {
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let effects = record_in(&tx, &records)?;
            let claimed = claim_in(
                &tx,
                claim.now,
                claim.wall_now,
                claim.limit,
                claim.per_webhook,
                &claim.in_flight,
            )?;
            let next = if claimed.len() < claim.limit {
                next_due_in(&tx, &claim.busy_after(&claimed))?
            } else {
                None
            };
            tx.commit()?;
            Ok((effects, claimed, next))
        })
        .await
    }

    /// The attempts that were started and never completed: the dispatcher stopped
    /// during their POST (S19). The caller records each as `unknown`.
    pub async fn interrupted(&self) -> Result<Vec<Interrupted>, StoreError> {
        self.call(|c| {
            let mut stmt = c.prepare(
                "SELECT d.seq, d.webhook_seq, a.n, a.revision, a.started_at, a.wall_at
                 FROM deliveries d LEFT JOIN attempts a
                   ON a.delivery_seq = d.seq AND a.n = d.attempts - 1 AND a.verdict = 'started'
                 WHERE d.state = 'inflight'",
            )?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, Option<i64>>(2)?,
                        r.get::<_, Option<i64>>(3)?,
                        r.get::<_, Option<i64>>(4)?,
                        r.get::<_, Option<i64>>(5)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let mut out = Vec::new();
            for (delivery_seq, webhook_seq, n, revision, started_at, wall_at) in rows {
                match (n, revision, started_at) {
                    (Some(n), Some(revision), Some(started_at)) => out.push(Interrupted {
                        delivery_seq,
                        webhook_seq,
                        attempt: u32::try_from(n).unwrap_or(u32::MAX),
                        revision,
                        started_at,
                        wall_at,
                    }),
                    // Left in flight by a hookjar from before write-ahead attempts:
                    // nothing says an attempt was made, so it is due again.
                    _ => {
                        c.execute(
                            "UPDATE deliveries SET state = 'pending' WHERE seq = ?1",
                            [delivery_seq],
                        )?;
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    /// Drops the pending deliveries of inactive webhooks (left by a crash between a
    /// deactivation and its bookkeeping).
    pub async fn drop_pending_of_inactive(&self) -> Result<usize, StoreError> {
        self.call(|c| Ok(c.execute(DROP_PENDING_OF_INACTIVE_SQL, [])?))
            .await
    }

    /// How many deliveries are pending or in flight.
    pub async fn pending_count(&self) -> Result<u64, StoreError> {
        self.call(|c| {
            Ok(c.query_row(
                "SELECT COUNT(*) FROM deliveries WHERE state IN ('pending', 'inflight')",
                [],
                |r| r.get::<_, i64>(0),
            )? as u64)
        })
        .await
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
        self.call(move |c| {
            let Some((wseq, _)) = find_webhook(c, &webhook)? else {
                return Ok(None);
            };
            let count: i64 = c.query_row(
                "SELECT COUNT(*) FROM deliveries WHERE webhook_seq = ?1",
                [wseq],
                |r| r.get(0),
            )?;
            let mut stmt = c.prepare_cached(WEBHOOK_DELIVERIES_SQL)?;
            let rows = stmt
                .query_map(params![wseq, limit as i64, offset as i64], |r| {
                    let state: String = r.get(5)?;
                    let due = r.get::<_, Option<i64>>(7)?.filter(|_| state == "pending");
                    Ok((
                        r.get::<_, i64>(0)?,
                        DeliveryView {
                            id: r.get(1)?,
                            event: r.get(2)?,
                            event_type: r.get(3)?,
                            digest: r.get(4)?,
                            next_attempt_at: due.map(crate::clock::format_micros),
                            next_attempt_wall_at: due
                                .map(|d| crate::clock::format_micros(timeline.wall_at(d))),
                            state,
                            created_at: crate::clock::format_micros(r.get(6)?),
                            note: r.get(8)?,
                            attempts: Vec::new(),
                        },
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let mut attempts = c.prepare_cached(
                "SELECT n, started_at, status, error, latency_us, verdict, detail, next_attempt_at,
                    wall_at, stale
                 FROM attempts WHERE delivery_seq = ?1 ORDER BY n",
            )?;
            let mut out = Vec::with_capacity(rows.len());
            for (seq, mut view) in rows {
                view.attempts = attempts
                    .query_map([seq], |r| {
                        Ok(AttemptView {
                            attempt: r.get(0)?,
                            at: crate::clock::format_micros(r.get(1)?),
                            wall_at: r.get::<_, Option<i64>>(8)?.map(crate::clock::format_micros),
                            stale: r.get(9)?,
                            status: r.get(2)?,
                            error: r.get(3)?,
                            latency_ms: r.get::<_, i64>(4)? as f64 / 1000.0,
                            verdict: r.get(5)?,
                            detail: r.get(6)?,
                            next_attempt_at: r
                                .get::<_, Option<i64>>(7)?
                                .map(crate::clock::format_micros),
                        })
                    })?
                    .collect::<Result<_, _>>()?;
                out.push(view);
            }
            Ok(Some((count as u64, out)))
        })
        .await
    }

    /// Queues the same event bytes again to the same webhook as a new delivery (X2).
    pub async fn redeliver(&self, delivery: String, now: Micros) -> Result<Redeliver, StoreError> {
        let ids = self.ids.clone();
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(seq) = ids.find(&tx, &delivery)? else {
                return Ok(Redeliver::NotFound);
            };
            let found: Option<(i64, i64, bool, String)> = tx
                .query_row(
                    "SELECT d.event_seq, d.webhook_seq, w.active, w.id FROM deliveries d
                     JOIN webhooks w ON w.seq = d.webhook_seq WHERE d.seq = ?1",
                    [seq],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()?;
            let Some((event_seq, webhook_seq, active, webhook)) = found else {
                return Ok(Redeliver::NotFound);
            };
            if !active {
                return Ok(Redeliver::Inactive(webhook));
            }
            let id = ids.insert(&tx, &mut None, event_seq, webhook_seq, now)?;
            tx.commit()?;
            Ok(Redeliver::Queued(id))
        })
        .await
    }
}

/// The page size of a new database file (see [`prepare`]).
const NEW_PAGE_SIZE: i64 = 2048;

/// How much WAL a file store gathers before SQLite copies it back (see [`prepare`]).
const CHECKPOINT_BYTES: i64 = 40_960_000;

/// Pragmas for every connection: WAL for files, foreign keys (for cascades).
fn prepare(conn: &Connection, config: &StoreConfig) -> rusqlite::Result<()> {
    if matches!(config, StoreConfig::File(_)) {
        // A new database gets 2 KiB pages instead of SQLite's 4 KiB; an existing one
        // keeps its own (this is a no-op once the file holds a table). Every commit
        // writes each page it dirtied whole to the WAL, an emit group dirties pages
        // all over the two random-id indexes, and each event's savepoint copies the
        // pages it first touches into a statement journal, which SQLite moves to a
        // temporary file past 64 KiB. With 4 KiB pages a delivery cost ~28 KB of
        // writes at 5,000 × 4 (~10 KB of WAL frames, the rest that spilled journal);
        // with 2 KiB pages ~6.8 KB, and the dispatcher delivers ~25 % more per second
        // (docs/performance.md). 1 KiB pages were slower again. Must come before
        // `journal_mode`, which writes the header of a new file.
        conn.pragma_update(None, "page_size", NEW_PAGE_SIZE)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // With WAL, NORMAL keeps every commit durable against a process crash (the
        // at-least-once promise of S19) and is much faster than FULL.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // Copy the WAL back into the database every ~40 MB of WAL rather than
        // SQLite's default 1,000 pages: a checkpoint costs two fsyncs and runs inside
        // whichever commit crosses the mark, so under load it ran many times a
        // second and held up every emit behind it. Hot pages are copied once per
        // checkpoint however often they changed, so fewer checkpoints copy less.
        let page_size: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
        conn.pragma_update(
            None,
            "wal_autocheckpoint",
            CHECKPOINT_BYTES / page_size.max(512),
        )?;
    }
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Plans must not depend on bound values: SQLite otherwise reads the claim's
    // `LIMIT ?` while planning and re-prepares the statement whenever the limit
    // changes, which is on nearly every claim.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // The hot path keeps ~15–18 statements prepared (claim, record, emit, the X2
    // reads); rusqlite's default cache of 16 would evict and re-prepare them in turn.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Runs the migrations the database has not seen yet.
fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version as usize >= MIGRATIONS.len() {
        return Ok(());
    }
    // Migration 5 rebuilds tables that others reference, which SQLite allows only
    // with foreign keys off (and a `PRAGMA` that cannot run inside a transaction);
    // each migration's result is checked before its commit instead.
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    let result = MIGRATIONS
        .iter()
        .enumerate()
        .skip(version as usize)
        .try_for_each(|(i, migration)| {
            // IMMEDIATE, and the version read again inside: a second connection
            // migrating the same file at once waits here, then finds it done.
            let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
            let now: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
            if now > i as i64 {
                return Ok(());
            }
            match migration {
                Migration::Sql(sql) => tx.execute_batch(sql)?,
                Migration::Code(run) => run(&tx)?,
            }
            let broken: Option<(String, String, i64)> = tx
                .query_row(
                    "SELECT \"table\", parent, (SELECT COUNT(*) FROM pragma_foreign_key_check)
                     FROM pragma_foreign_key_check LIMIT 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            if let Some((table, parent, rows)) = broken {
                return Err(StoreError::Migration {
                    version: i as i64 + 1,
                    detail: format!(
                        "it would leave {rows} rows of {table} pointing at rows of {parent} that do not exist"
                    ),
                });
            }
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
            tx.commit()?;
            Ok(())
        });
    conn.pragma_update(None, "foreign_keys", "ON")?;
    result
}

/// A delivery by the `seq` its id decodes to (and the id, which a `seq` alone does
/// not prove).
const FIND_DELIVERY_SQL: &str = "SELECT seq FROM deliveries WHERE seq = ?1 AND id = ?2";

/// How the store names deliveries: ids derived from `seq` (schema 5), and where the
/// random ids of deliveries made before schema 5 end.
#[derive(Debug, Clone)]
struct DeliveryIds {
    ids: hookjar_core::ids::SeqIds,
    /// The last `seq` with a random id (0: none), under `deliveries_legacy_id`.
    legacy: i64,
    /// The query that finds a random id (only prepared when `legacy > 0`: the index
    /// exists only then).
    legacy_lookup: Arc<str>,
}

impl DeliveryIds {
    fn load(conn: &Connection) -> Result<DeliveryIds, StoreError> {
        fn read<T: std::str::FromStr>(conn: &Connection, key: &'static str) -> Result<T, StoreError>
        where
            T::Err: std::fmt::Display,
        {
            let text: String =
                conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))?;
            text.parse().map_err(|e| StoreError::Corrupt {
                table: "meta",
                column: key,
                detail: format!("{text:?}: {e}"),
            })
        }
        let legacy = read::<i64>(conn, "legacy_delivery_ids")?;
        Ok(DeliveryIds {
            ids: hookjar_core::ids::SeqIds::new(read::<u64>(conn, "delivery_id_key")?),
            legacy,
            // A literal bound: SQLite uses a partial index only for a query whose WHERE
            // implies the index's, which a bound parameter cannot.
            legacy_lookup: format!(
                "SELECT seq FROM deliveries INDEXED BY deliveries_legacy_id WHERE id = ?1 AND seq <= {legacy}"
            )
            .into(),
        })
    }

    /// The `seq` of the delivery named `id`, if there is one.
    fn find(&self, c: &Connection, id: &str) -> rusqlite::Result<Option<i64>> {
        if let Some(seq) = self.ids.seq(id).and_then(|s| i64::try_from(s).ok()) {
            let found = c
                .prepare_cached(FIND_DELIVERY_SQL)?
                .query_row(params![seq, id], |r| r.get(0))
                .optional()?;
            if found.is_some() {
                return Ok(found);
            }
        }
        if self.legacy == 0 {
            return Ok(None);
        }
        c.prepare_cached(&self.legacy_lookup)?
            .query_row([id], |r| r.get(0))
            .optional()
    }

    /// Inserts a pending delivery due at `now` and returns its id. `next` carries the
    /// next free `seq` through one transaction (`None`: read it first).
    fn insert(
        &self,
        c: &Connection,
        next: &mut Option<i64>,
        event_seq: i64,
        webhook_seq: i64,
        now: Micros,
    ) -> Result<String, StoreError> {
        let mut seq = match *next {
            Some(seq) => seq,
            None => {
                // Past the highest `seq` ever given, as AUTOINCREMENT picks it: the
                // counter, or the highest row should the counter have been lowered
                // (by hand, or by a tool that rebuilt the file).
                let last: i64 = c
                    .prepare_cached(
                        "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'deliveries'), 0),
                                    COALESCE((SELECT MAX(seq) FROM deliveries), 0))",
                    )?
                    .query_row([], |r| r.get(0))?;
                last + 1
            }
        };
        let mut id = self.ids.id(seq as u64);
        // A derived id that happens to equal one of the old random ids is skipped
        // (about once in 10^13 for a million old deliveries), so ids stay unique.
        while self.legacy > 0
            && c.prepare_cached(&self.legacy_lookup)?
                .query_row([&id], |_| Ok(()))
                .optional()?
                .is_some()
        {
            seq += 1;
            id = self.ids.id(seq as u64);
        }
        c.prepare_cached(
            "INSERT INTO deliveries (seq, id, event_seq, webhook_seq, state, attempts, due_at, created_at)
             VALUES (?1, ?2, ?3, ?4, 'pending', 0, ?5, ?5)",
        )?
        .execute(params![seq, id, event_seq, webhook_seq, now])?;
        *next = Some(seq + 1);
        Ok(id)
    }
}

const WEBHOOK_COLUMNS: &str = "seq, id, target_url, active, deactivate_reason, event_type, \
     basic_auth_username, basic_auth_password, additional_headers";

type WebhookRow = Result<(i64, Webhook), StoreError>;

/// Reads [`WEBHOOK_COLUMNS`] from a row (column errors are SQLite's; value errors
/// are reported as [`StoreError::Corrupt`]).
fn read_webhook(row: &Row<'_>) -> rusqlite::Result<WebhookRow> {
    read_webhook_at(row, 0).map(Ok).or_else(|e| match e {
        ReadError::Sql(e) => Err(e),
        ReadError::Corrupt(c) => Ok(Err(c)),
    })
}

enum ReadError {
    Sql(rusqlite::Error),
    Corrupt(StoreError),
}

impl From<rusqlite::Error> for ReadError {
    fn from(e: rusqlite::Error) -> Self {
        ReadError::Sql(e)
    }
}

impl From<ReadError> for StoreError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Sql(e) => StoreError::Sqlite(e),
            ReadError::Corrupt(c) => c,
        }
    }
}

fn read_webhook_at(row: &Row<'_>, at: usize) -> Result<(i64, Webhook), ReadError> {
    let corrupt = |column, detail: String| {
        ReadError::Corrupt(StoreError::Corrupt {
            table: "webhooks",
            column,
            detail,
        })
    };
    let event_type = match row.get::<_, Option<String>>(at + 5)? {
        None => None,
        Some(s) => Some(
            s.parse::<EventType>()
                .map_err(|e| corrupt("event_type", e.to_string()))?,
        ),
    };
    let deactivate_reason = match row.get::<_, Option<String>>(at + 4)? {
        None => None,
        Some(s) => Some(
            DeactivateReason::from_code(&s)
                .ok_or_else(|| corrupt("deactivate_reason", s.clone()))?,
        ),
    };
    let headers: String = row.get(at + 8)?;
    let additional_headers: Headers =
        serde_json::from_str(&headers).map_err(|e| corrupt("additional_headers", e.to_string()))?;
    Ok((
        row.get(at)?,
        Webhook {
            id: row.get(at + 1)?,
            target_url: row.get(at + 2)?,
            active: row.get(at + 3)?,
            deactivate_reason,
            event_type,
            basic_auth_username: row.get(at + 6)?,
            basic_auth_password: row.get(at + 7)?,
            additional_headers,
        },
    ))
}

fn find_webhook(c: &Connection, id: &str) -> Result<Option<(i64, Webhook)>, StoreError> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = ?1"
    ))?;
    let mut rows = stmt.query([id])?;
    match rows.next()? {
        Some(row) => Ok(Some(read_webhook_at(row, 0)?)),
        None => Ok(None),
    }
}

fn write_webhook(c: &Connection, seq: i64, w: &Webhook) -> Result<(), StoreError> {
    c.prepare_cached(
        "UPDATE webhooks SET target_url = ?2, active = ?3, deactivate_reason = ?4, event_type = ?5,
            basic_auth_username = ?6, basic_auth_password = ?7, additional_headers = ?8,
            revision = revision + 1
         WHERE seq = ?1",
    )?
    .execute(params![
        seq,
        w.target_url,
        w.active,
        w.deactivate_reason.map(|r| r.as_str()),
        w.event_type.map(|t| t.as_str()),
        w.basic_auth_username,
        w.basic_auth_password,
        headers_json(&w.additional_headers),
    ])?;
    Ok(())
}

/// Drops a deactivated webhook's pending deliveries (S15: nothing more is POSTed).
fn drop_pending(c: &Connection, webhook_seq: i64, why: &str) -> Result<usize, StoreError> {
    #[cfg(feature = "faults")]
    if crate::faults::keep_pending(why) {
        return Ok(0);
    }
    let note = format!("dropped: {why}");
    let pending = c
        .prepare_cached(
            "UPDATE deliveries INDEXED BY deliveries_webhook_due
             SET state = 'dropped', due_at = NULL, note = ?2
             WHERE webhook_seq = ?1 AND state = 'pending'",
        )?
        .execute(params![webhook_seq, note])?;
    // The attempts in flight go too: their answers are still logged when they come,
    // but a retry verdict finds the delivery no longer in flight and requeues
    // nothing, so a re-activated webhook never gets an event from before (S16).
    let in_flight = c
        .prepare_cached(
            "UPDATE deliveries INDEXED BY deliveries_inflight
             SET state = 'dropped', due_at = NULL, note = ?2
             WHERE state = 'inflight' AND webhook_seq = ?1",
        )?
        .execute(params![webhook_seq, note])?;
    Ok(pending + in_flight)
}

/// Stores a group of emits and returns each one's result, in order: all in one
/// transaction, each event under its own savepoint so that one that fails is rolled
/// back alone. If the transaction itself cannot begin or commit (nothing of the
/// group is then stored), every event is tried again in a transaction of its own, so
/// that each caller learns its own fate.
fn emit_group(
    c: &mut Connection,
    ids: &DeliveryIds,
    group: &[QueuedEmit],
) -> Vec<Result<usize, StoreError>> {
    if group.len() > 1 {
        if let Ok(results) = emit_together(c, ids, group) {
            return results;
        }
    }
    group
        .iter()
        .map(|q| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = insert_event(&tx, ids, &mut FanOut::default(), &q.event, q.now)?;
            tx.commit()?;
            Ok(n)
        })
        .collect()
}

/// The group in one IMMEDIATE transaction, a savepoint per event.
fn emit_together(
    c: &mut Connection,
    ids: &DeliveryIds,
    group: &[QueuedEmit],
) -> Result<Vec<Result<usize, StoreError>>, StoreError> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut fan_out = FanOut::default();
    let mut results = Vec::with_capacity(group.len());
    for q in group {
        tx.prepare_cached("SAVEPOINT emit")?.execute([])?;
        let result = insert_event(&tx, ids, &mut fan_out, &q.event, q.now);
        if result.is_err() {
            tx.prepare_cached("ROLLBACK TO emit")?.execute([])?;
        }
        tx.prepare_cached("RELEASE emit")?.execute([])?;
        results.push(result);
    }
    tx.commit()?;
    Ok(results)
}

/// S12's targets per event type, read once per transaction: the transaction holds
/// the write lock, so the webhooks cannot change while a group is written. Also the
/// next free delivery `seq` ([`DeliveryIds::insert`]).
#[derive(Default)]
struct FanOut {
    targets: Vec<(EventType, Vec<i64>)>,
    next_delivery: Option<i64>,
}

impl FanOut {
    /// The webhook seqs that receive `event_type`: active webhooks taking this type
    /// or all types, oldest first, one per normalised `target_url`.
    fn targets(&mut self, c: &Connection, event_type: EventType) -> Result<&[i64], StoreError> {
        let at = match self.targets.iter().position(|(t, _)| *t == event_type) {
            Some(at) => at,
            None => {
                let mut stmt = c.prepare_cached(&format!(
                    "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE active = 1 ORDER BY seq"
                ))?;
                let rows = stmt
                    .query_map([], read_webhook)?
                    .collect::<Result<Vec<_>, _>>()?;
                #[cfg(feature = "faults")]
                let rows = crate::faults::fan_out_rows(rows);
                let mut seen = HashSet::new();
                let mut out = Vec::new();
                for row in rows {
                    let (seq, w) = row?;
                    let key = normalise_url(&w.target_url);
                    #[cfg(feature = "faults")]
                    let key = crate::faults::dedupe_key(key, seq, &w.target_url);
                    if w.receives(event_type) && seen.insert(key) {
                        out.push(seq);
                    }
                }
                self.targets.push((event_type, out));
                self.targets.len() - 1
            }
        };
        Ok(&self.targets[at].1)
    }
}

/// Inserts one event and its deliveries (all due at `now`); returns how many.
fn insert_event(
    c: &Connection,
    ids: &DeliveryIds,
    fan_out: &mut FanOut,
    event: &NewEvent,
    now: Micros,
) -> Result<usize, StoreError> {
    c.prepare_cached(
        "INSERT INTO events (id, event_type, created_at, digest, body)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        event.id,
        event.event_type.as_str(),
        now,
        event.body.digest().to_string(),
        event.body.bytes().as_ref(),
    ])?;
    let event_seq = c.last_insert_rowid();
    // Taken out while the targets are borrowed; left out (read again) if this event
    // fails and its savepoint is rolled back.
    let mut next = fan_out.next_delivery.take();
    let targets = fan_out.targets(c, event.event_type)?;
    for &webhook_seq in targets {
        ids.insert(c, &mut next, event_seq, webhook_seq, now)?;
    }
    let n = targets.len();
    fan_out.next_delivery = next;
    Ok(n)
}

/// The earliest due instant of any pending delivery, leaving out the webhooks in
/// `busy`. One index step per webhook.
fn next_due_in(c: &Connection, busy: &[i64]) -> Result<Option<Micros>, StoreError> {
    Ok(first_dues(c)?
        .into_iter()
        .filter(|f| !busy.contains(&f.webhook_seq))
        .filter_map(|f| f.first.map(|(at, _)| at))
        .min())
}

/// An active webhook and the due instant of its earliest pending delivery.
struct FirstDue {
    webhook_seq: i64,
    revision: i64,
    /// `(due_at, seq)` of the earliest pending delivery, if any: the order in which
    /// deliveries are claimed.
    first: Option<(Micros, i64)>,
}

/// Every active webhook, oldest first, with its earliest pending delivery's due
/// instant: one statement, one probe of the `(webhook_seq, due_at)` index per
/// webhook, so a scheduler turn reads and parses only the webhooks with something
/// due (with a thousand webhooks, reading all of them every turn was half the
/// dispatcher's CPU).
fn first_dues(c: &Connection) -> Result<Vec<FirstDue>, StoreError> {
    let mut stmt = c.prepare_cached(FIRST_DUE_SQL)?;
    let rows = stmt
        .query_map([], |r| {
            Ok(FirstDue {
                webhook_seq: r.get(0)?,
                revision: r.get(1)?,
                first: r
                    .get::<_, Option<Micros>>(2)?
                    .zip(r.get::<_, Option<i64>>(3)?),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Claims due deliveries inside the caller's transaction (see
/// [`SqliteStore::claim_due`]).
fn claim_in(
    tx: &Connection,
    now: Micros,
    wall_now: Micros,
    limit: usize,
    per_webhook: usize,
    in_flight: &HashMap<i64, usize>,
) -> Result<Vec<Claimed>, StoreError> {
    let mut candidates: Vec<(Micros, Claimed)> = Vec::new();
    {
        let mut due = tx.prepare_cached(CLAIM_SQL)?;
        let mut read = tx.prepare_cached(&format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE seq = ?1"
        ))?;
        let room_of = |webhook_seq: &i64| {
            let busy = in_flight.get(webhook_seq).copied().unwrap_or(0);
            per_webhook.saturating_sub(busy).min(limit)
        };
        // The webhooks with something due and room for it, in the order of their
        // earliest due delivery. Each one's deliveries come after its first, so once
        // `limit` candidates sort before the next webhook's first, no later webhook
        // can place one among the earliest `limit`: the rest are not read at all
        // (with a thousand webhooks all due, a turn reads a few dozen).
        let mut firsts: Vec<FirstDue> = first_dues(tx)?
            .into_iter()
            .filter(|f| f.first.is_some_and(|(at, _)| at <= now) && room_of(&f.webhook_seq) > 0)
            .collect();
        firsts.sort_by_key(|f| f.first);
        for first in firsts {
            let FirstDue {
                webhook_seq,
                revision,
                first,
            } = first;
            let first = first.expect("filtered above");
            let before = candidates
                .iter()
                .filter(|(due, c)| (*due, c.delivery_seq) < first)
                .count();
            if before >= limit {
                break;
            }
            let room = room_of(&webhook_seq);
            let (_, webhook) = read.query_row([webhook_seq], read_webhook)??;
            let webhook = Arc::new(webhook);
            let mut rows = due.query(params![webhook_seq, now, room as i64])?;
            while let Some(row) = rows.next()? {
                let attempts: i64 = row.get(2)?;
                let body: Vec<u8> = row.get(5)?;
                candidates.push((
                    row.get(3)?,
                    Claimed {
                        delivery_seq: row.get(0)?,
                        delivery_id: row.get(1)?,
                        attempt: u32::try_from(attempts).unwrap_or(u32::MAX),
                        webhook: Arc::clone(&webhook),
                        webhook_seq,
                        revision,
                        event_type: row.get(4)?,
                        body: Payload::from_bytes(body),
                    },
                ));
            }
        }
    }
    // Earliest first across webhooks.
    candidates.sort_by_key(|(due, c)| (*due, c.delivery_seq));
    candidates.truncate(limit);
    {
        let mut mark = tx.prepare_cached(
            "UPDATE deliveries SET state = 'inflight', attempts = attempts + 1 WHERE seq = ?1",
        )?;
        let mut ahead = tx.prepare_cached(
            "INSERT OR REPLACE INTO attempts
               (delivery_seq, n, started_at, wall_at, latency_us, status, error, verdict,
                detail, next_attempt_at, revision, stale)
             VALUES (?1, ?2, ?3, ?4, 0, NULL, NULL, 'started', 'POST in flight', NULL, ?5, 0)",
        )?;
        for (_, d) in &candidates {
            mark.execute([d.delivery_seq])?;
            ahead.execute(params![
                d.delivery_seq,
                d.attempt,
                now,
                wall_now,
                d.revision
            ])?;
        }
    }
    Ok(candidates.into_iter().map(|(_, d)| d).collect())
}

/// Records attempts inside the caller's transaction (see [`SqliteStore::record`]).
fn record_in(tx: &Connection, batch: &[AttemptRecord]) -> Result<RecordEffects, StoreError> {
    let mut effects = RecordEffects::default();
    for rec in batch {
        // The delivery may be gone: its webhook was deleted while the POST was
        // in flight. Nothing is left to record; skipping it keeps the rest of
        // the batch (other webhooks' verdicts) from failing with it.
        let current: Option<i64> = tx
            .prepare_cached(
                "SELECT w.revision FROM deliveries d JOIN webhooks w ON w.seq = d.webhook_seq
                 WHERE d.seq = ?1",
            )?
            .query_row(params![rec.delivery_seq], |r| r.get(0))
            .optional()?;
        let Some(current) = current else {
            effects.skipped += 1;
            continue;
        };
        let stale = current != rec.revision;
        #[cfg(feature = "faults")]
        let stale = crate::faults::stale(stale);
        let cols = rec.columns();
        tx.prepare_cached(
            "INSERT OR REPLACE INTO attempts
               (delivery_seq, n, started_at, wall_at, latency_us, status, error, verdict,
                detail, next_attempt_at, revision, stale)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?
        .execute(params![
            rec.delivery_seq,
            rec.attempt,
            rec.started_at,
            rec.wall_at,
            rec.latency_us,
            cols.status,
            cols.error,
            cols.label,
            rec.detail,
            cols.next_at,
            rec.revision,
            stale,
        ])?;
        match rec.verdict {
            Verdict::Delivered => {
                tx.prepare_cached(
                    "UPDATE deliveries SET state = 'delivered', attempts = ?2, due_at = NULL,
                        finished_at = ?3, note = NULL WHERE seq = ?1",
                )?
                .execute(params![
                    rec.delivery_seq,
                    rec.attempt + 1,
                    rec.finished_at
                ])?;
            }
            Verdict::RetryAfter { .. } => {
                // Only requeue if nothing else ended the delivery meanwhile
                // (e.g. its webhook was deactivated by another delivery).
                tx.prepare_cached(
                    "UPDATE deliveries SET state = 'pending', attempts = ?2, due_at = ?3
                     WHERE seq = ?1 AND state = 'inflight'",
                )?
                .execute(params![
                    rec.delivery_seq,
                    rec.attempt + 1,
                    cols.next_at
                ])?;
                // …and not at all if its webhook went inactive meanwhile.
                tx.prepare_cached(
                    "UPDATE deliveries SET state = 'dropped', due_at = NULL,
                        note = 'dropped: webhook inactive'
                     WHERE seq = ?1 AND state = 'pending'
                       AND (SELECT active FROM webhooks WHERE seq = ?2) = 0",
                )?
                .execute(params![rec.delivery_seq, rec.webhook_seq])?;
            }
            Verdict::Deactivate { reason } => {
                // S16: a verdict from an attempt that started before the webhook's
                // last update ends the delivery but leaves the webhook alone.
                let note = if stale {
                    format!(
                        "ended ({reason}), not applied to the webhook: it was updated while the attempt was in flight"
                    )
                } else {
                    format!("webhook deactivated ({reason})")
                };
                tx.prepare_cached(
                    "UPDATE deliveries SET state = 'failed', attempts = ?2, due_at = NULL,
                        finished_at = ?3, note = ?4 WHERE seq = ?1",
                )?
                .execute(params![
                    rec.delivery_seq,
                    rec.attempt + 1,
                    rec.finished_at,
                    note
                ])?;
                if stale {
                    effects.stale += 1;
                    continue;
                }
                let changed = tx
                    .prepare_cached(
                        "UPDATE webhooks SET active = 0, deactivate_reason = ?2,
                            revision = revision + 1
                         WHERE seq = ?1 AND active = 1",
                    )?
                    .execute(params![rec.webhook_seq, reason.as_str()])?;
                let dropped = drop_pending(
                    tx,
                    rec.webhook_seq,
                    &format!("webhook deactivated ({reason})"),
                )?;
                if changed > 0 {
                    let id: String = tx.query_row(
                        "SELECT id FROM webhooks WHERE seq = ?1",
                        [rec.webhook_seq],
                        |r| r.get(0),
                    )?;
                    effects.deactivated.push((id, reason, dropped));
                }
            }
        }
    }
    Ok(effects)
}

/// Drops the pending deliveries of inactive webhooks, found through the pending-only
/// due index (not by reading every delivery such a webhook ever had).
const DROP_PENDING_OF_INACTIVE_SQL: &str = "UPDATE deliveries INDEXED BY deliveries_webhook_due
     SET state = 'dropped', due_at = NULL, note = 'dropped: webhook inactive'
     WHERE state = 'pending'
       AND webhook_seq IN (SELECT seq FROM webhooks WHERE active = 0)";

/// One page of a webhook's deliveries, oldest first, with their event.
const WEBHOOK_DELIVERIES_SQL: &str =
    "SELECT d.seq, d.id, e.id, e.event_type, e.digest, d.state, d.created_at, d.due_at, d.note
     FROM deliveries d JOIN events e ON e.seq = d.event_seq
     WHERE d.webhook_seq = ?1 ORDER BY d.seq LIMIT ?2 OFFSET ?3";

/// Each active webhook's revision and the due instant of its earliest pending
/// delivery ([`first_dues`]).
const FIRST_DUE_SQL: &str = "SELECT w.seq, w.revision, d.due_at, d.seq
     FROM webhooks w LEFT JOIN deliveries d ON d.seq =
       (SELECT f.seq FROM deliveries f INDEXED BY deliveries_webhook_due
         WHERE f.state = 'pending' AND f.webhook_seq = w.seq ORDER BY f.due_at, f.seq LIMIT 1)
     WHERE w.active = 1 ORDER BY w.seq";

/// One webhook's due deliveries, earliest first, with their event.
const CLAIM_SQL: &str = "SELECT d.seq, d.id, d.attempts, d.due_at, e.event_type, e.body
     FROM deliveries d INDEXED BY deliveries_webhook_due
     JOIN events e ON e.seq = d.event_seq
     WHERE d.state = 'pending' AND d.webhook_seq = ?1 AND d.due_at <= ?2
     ORDER BY d.due_at LIMIT ?3";

#[cfg(test)]
mod tests {
    use super::*;

    /// The scheduler's two hot queries walk the partial index on `(webhook_seq,
    /// due_at)` (so a million pending retries cost an index step, not a scan) and
    /// never sort; nor does listing a webhook's deliveries.
    #[test]
    fn hot_queries_use_the_due_index() {
        let store = SqliteStore::open(&StoreConfig::InMemory).unwrap();
        let conn = store.conn.lock().unwrap();
        let plan_of = |sql: &str, params: &[&dyn rusqlite::ToSql]| -> Vec<String> {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            stmt.query_map(params, |r| r.get(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        for (sql, plan) in [
            (FIRST_DUE_SQL, plan_of(FIRST_DUE_SQL, &[])),
            (CLAIM_SQL, plan_of(CLAIM_SQL, &[&1, &0, &1])),
        ] {
            let plan = plan.join("\n");
            assert!(plan.contains("deliveries_webhook_due"), "{sql}\n{plan}");
            assert!(!plan.contains("TEMP B-TREE"), "no sort: {plan}");
        }
        // A webhook's deliveries are read in `seq` order from its index (schema 4:
        // `(webhook_seq)` alone, which state changes leave alone), never sorted.
        let plan = plan_of(WEBHOOK_DELIVERIES_SQL, &[&1, &10, &0]).join("\n");
        assert!(
            plan.contains("USING INDEX deliveries_webhook (webhook_seq=?)"),
            "{plan}"
        );
        assert!(!plan.contains("TEMP B-TREE"), "no sort: {plan}");
        let plan = plan_of(DROP_PENDING_OF_INACTIVE_SQL, &[]).join("\n");
        assert!(
            plan.contains("INDEX deliveries_webhook_due (webhook_seq=?)"),
            "{plan}"
        );
    }

    /// Group commit: emits that wait while the connection is busy are stored in one
    /// transaction, each caller gets its own answer, and an event that fails (a
    /// duplicate id; a delivery refused after its event row was written) is rolled
    /// back alone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    // The test holds the connection across awaits on purpose: that is what makes the
    // emits queue up; the emits themselves run on other tasks.
    #[allow(clippy::await_holding_lock)]
    async fn waiting_emits_share_one_transaction_and_fail_alone() {
        use hookjar_core::{NewWebhook, Payload};
        let store = SqliteStore::open(&StoreConfig::InMemory).unwrap();
        store
            .create_webhook(NewWebhook::to("http://127.0.0.1:9/all"), 0)
            .await
            .unwrap();
        let mut only = NewWebhook::to("http://127.0.0.1:9/only");
        only.event_type = Some(EventType::CourseCompletion);
        store.create_webhook(only, 0).await.unwrap();
        let event = |id: &str, event_type| NewEvent {
            id: id.to_owned(),
            event_type,
            body: Payload::from_bytes(format!("{{\"id\":\"{id}\"}}").into_bytes()),
        };
        store
            .emit(event("taken", EventType::PathCompletion), 1)
            .await
            .unwrap();
        let groups_before = lock(&store.emits).groups;

        // Hold the connection, as a long claim would: the emits below queue up.
        let held = lock(&store.conn);
        // Event `b`'s deliveries are refused after its event row is written: only
        // its savepoint can take that row back.
        held.execute_batch(
            "CREATE TEMP TRIGGER refuse_b BEFORE INSERT ON deliveries
             WHEN (SELECT id FROM events WHERE seq = NEW.event_seq) = 'b'
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;",
        )
        .unwrap();
        let group = [
            ("a", EventType::CourseCompletion),
            ("b", EventType::CourseCompletion), // its deliveries are refused: fails
            ("taken", EventType::CourseCompletion), // a duplicate id: fails
            ("c", EventType::PathCompletion),
        ];
        let answers: Vec<_> = group
            .iter()
            .map(|&(id, t)| {
                let store = store.clone();
                tokio::spawn(async move { store.emit(event(id, t), 2).await })
            })
            .collect();
        while lock(&store.emits).waiting.len() < group.len() {
            tokio::task::yield_now().await;
        }
        drop(held);

        let mut results = Vec::new();
        for answer in answers {
            results.push(answer.await.unwrap());
        }
        assert_eq!(lock(&store.emits).groups, groups_before + 1, "one group");
        assert_eq!(results[0].as_ref().unwrap(), &2, "COURSE_COMPLETION: both");
        assert!(
            matches!(&results[1], Err(StoreError::Sqlite(e)) if e.to_string().contains("refused by the test")),
            "{:?}",
            results[1]
        );
        assert!(
            matches!(&results[2], Err(StoreError::Sqlite(e)) if e.to_string().contains("UNIQUE")),
            "{:?}",
            results[2]
        );
        assert_eq!(
            results[3].as_ref().unwrap(),
            &1,
            "PATH_COMPLETION: `all` only"
        );
        let conn = lock(&store.conn);
        let stored: Vec<(String, i64)> = conn
            .prepare(
                "SELECT e.id, COUNT(d.seq) FROM events e
                 LEFT JOIN deliveries d ON d.event_seq = e.seq GROUP BY e.seq ORDER BY e.id",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            stored,
            [
                ("a".to_owned(), 2),
                ("c".to_owned(), 1),
                ("taken".to_owned(), 1)
            ],
            "the failed event left nothing behind, the others are all stored"
        );
    }

    /// New file stores get 2 KiB pages (a quarter of the WAL bytes per delivery);
    /// a store made with SQLite's 4 KiB keeps them and is checkpointed at the same
    /// ~40 MB of WAL.
    #[test]
    fn new_files_get_small_pages_and_old_ones_keep_theirs() {
        let dir = scratch_dir("pages");
        let pages = |path: &std::path::Path| {
            let store = SqliteStore::open(&StoreConfig::File(path.to_owned())).unwrap();
            let conn = lock(&store.conn);
            let size: i64 = conn
                .pragma_query_value(None, "page_size", |r| r.get(0))
                .unwrap();
            let ckpt: i64 = conn
                .pragma_query_value(None, "wal_autocheckpoint", |r| r.get(0))
                .unwrap();
            (size, ckpt)
        };

        let new = dir.join("new.db");
        assert_eq!(pages(&new), (2048, 20_000));
        assert_eq!(pages(&new), (2048, 20_000), "reopened");

        let old = dir.join("old.db");
        {
            let conn = Connection::open(&old).unwrap();
            conn.pragma_update(None, "page_size", 4096).unwrap();
            conn.pragma_update(None, "journal_mode", "WAL").unwrap();
            migrate(&conn).unwrap();
        }
        assert_eq!(pages(&old), (4096, 10_000));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn migrations_are_recorded_and_newer_databases_refused() {
        let conn = Connection::open_in_memory().unwrap();
        migrate(&conn).unwrap();
        migrate(&conn).unwrap(); // idempotent
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        assert!(matches!(migrate(&conn), Err(StoreError::TooNew { .. })));
    }

    /// A fresh folder for a test's database files (the test removes it).
    fn scratch_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "hookjar-{name}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Brings `conn` to schema `version` as an older hookjar left it (the SQL
    /// migrations up to it), holding webhook `w` and event `e` (both `seq` 1), and
    /// runs `rows` (the deliveries of the test) in the same batch.
    fn an_old_store(conn: &Connection, version: usize, rows: &str) {
        for migration in &MIGRATIONS[..version] {
            let Migration::Sql(sql) = migration else {
                unreachable!("the migrations before schema 5 are SQL")
            };
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch(&format!(
            "PRAGMA user_version = {version};
             INSERT INTO webhooks (id, target_url, active, basic_auth_username,
                 basic_auth_password, additional_headers, created_at)
             VALUES ('w', 'http://127.0.0.1:9/', 1, '', '', '{{}}', 0);
             INSERT INTO events (id, event_type, created_at, digest, body)
             VALUES ('e', 'COURSE_ENROLLMENT', 0, 'd', x'7b7d');
             {rows}"
        ))
        .unwrap();
    }

    /// A store written by schema 3 (the webhook index with the state) keeps its
    /// deliveries through migration 4, and its listing uses the new index.
    #[test]
    fn a_schema_3_store_migrates_with_its_deliveries() {
        let conn = Connection::open_in_memory().unwrap();
        an_old_store(
            &conn,
            3,
            "INSERT INTO deliveries (id, event_seq, webhook_seq, state, due_at, created_at)
             VALUES ('d1', 1, 1, 'delivered', NULL, 0), ('d2', 1, 1, 'pending', 5, 0);",
        );
        migrate(&conn).unwrap();
        let ids: Vec<String> = conn
            .prepare(WEBHOOK_DELIVERIES_SQL)
            .unwrap()
            .query_map(params![1, 10, 0], |r| r.get(1))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(ids, ["d1", "d2"]);
        let index: String = conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name = 'deliveries_webhook'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(index.ends_with("deliveries(webhook_seq)"), "{index}");
        assert_eq!(
            drop_pending(&conn, 1, "test").unwrap(),
            1,
            "the pending one, through the due index"
        );
    }

    /// Schema 5 on a store of schema 4: the deliveries keep their rows, attempts,
    /// random ids and `seq` counter (a deleted delivery's `seq` is not given again);
    /// the redeliver call finds old and new ids; new ids decode to their `seq`;
    /// foreign keys are back on and still cascade.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_schema_4_store_keeps_its_delivery_ids_and_new_ones_derive_from_seq() {
        let dir = scratch_dir("schema5");
        let path = dir.join("s4.db");
        {
            let conn = Connection::open(&path).unwrap();
            an_old_store(
                &conn,
                4,
                "INSERT INTO deliveries (id, event_seq, webhook_seq, state, due_at, created_at)
                 VALUES ('oldone', 1, 1, 'delivered', NULL, 0),
                        ('oldtwo', 1, 1, 'pending', 5, 0),
                        ('gone', 1, 1, 'delivered', NULL, 0);
                 INSERT INTO attempts (delivery_seq, n, started_at, latency_us, status,
                     verdict, detail)
                 VALUES (1, 1, 0, 10, 200, 'delivered', '');
                 DELETE FROM deliveries WHERE id = 'gone';",
            );
        }
        let store = SqliteStore::open(&StoreConfig::File(path.clone())).unwrap();
        let count =
            |sql: &str| -> i64 { lock(&store.conn).query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(count("PRAGMA user_version"), SCHEMA_VERSION);
        assert_eq!(count("PRAGMA foreign_keys"), 1);
        assert_eq!(
            count("SELECT seq FROM sqlite_sequence WHERE name = 'deliveries'"),
            3
        );
        assert_eq!(count("SELECT COUNT(*) FROM deliveries"), 2);
        assert_eq!(count("SELECT COUNT(*) FROM attempts"), 1);
        assert_eq!(
            count(
                "SELECT COUNT(*) FROM sqlite_master WHERE tbl_name = 'deliveries' AND name LIKE 'sqlite_autoindex%'"
            ),
            0,
            "no index of random ids"
        );
        assert_eq!(
            count(
                "SELECT COUNT(*) FROM sqlite_master WHERE tbl_name = 'events' AND name LIKE 'sqlite_autoindex%'"
            ),
            1,
            "events keep theirs"
        );
        {
            let conn = lock(&store.conn);
            let mut stmt = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {FIND_DELIVERY_SQL}"))
                .unwrap();
            let plan: Vec<String> = stmt
                .query_map(params![1, "x"], |r| r.get(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(plan.join(" ").contains("INTEGER PRIMARY KEY"), "{plan:?}");
            let mut stmt = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {}", store.ids.legacy_lookup))
                .unwrap();
            let plan: Vec<String> = stmt
                .query_map(["x"], |r| r.get(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(plan.join(" ").contains("deliveries_legacy_id"), "{plan:?}");
        }

        let queued = |r: Redeliver| match r {
            Redeliver::Queued(id) => id,
            other => panic!("not queued: {other:?}"),
        };
        let new = queued(store.redeliver("oldone".into(), 10).await.unwrap());
        assert_eq!(
            store.ids.ids.seq(&new),
            Some(4),
            "after the deleted 3: {new}"
        );
        let newer = queued(store.redeliver(new.clone(), 11).await.unwrap());
        assert_eq!(store.ids.ids.seq(&newer), Some(5));
        queued(store.redeliver("oldtwo".into(), 12).await.unwrap());
        for missing in [
            "gone".to_owned(),
            "nope".to_owned(),
            // Decodes to seq 1, whose id is `oldone`: a seq alone is not an id.
            store.ids.ids.id(1),
            store.ids.ids.id(99),
        ] {
            assert_eq!(
                store.redeliver(missing.clone(), 13).await.unwrap(),
                Redeliver::NotFound,
                "{missing}"
            );
        }
        let ids: Vec<String> = lock(&store.conn)
            .prepare("SELECT id FROM deliveries ORDER BY seq")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(ids[..2], ["oldone", "oldtwo"]);
        assert_eq!(ids[2..4], [new, newer]);

        // Reopened, it names the next delivery from the same key and counter.
        drop(store);
        let store = SqliteStore::open(&StoreConfig::File(path)).unwrap();
        let again = queued(store.redeliver("oldone".into(), 14).await.unwrap());
        assert_eq!(store.ids.ids.seq(&again), Some(7));
        assert_eq!(
            store.redeliver(again, 15).await.unwrap(),
            Redeliver::Queued(store.ids.ids.id(8))
        );

        // Cascades still reach deliveries and attempts.
        assert!(store.delete_webhook("w".into()).await.unwrap());
        let count =
            |sql: &str| -> i64 { lock(&store.conn).query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(count("SELECT COUNT(*) FROM deliveries"), 0);
        assert_eq!(count("SELECT COUNT(*) FROM attempts"), 0);
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A migration that would leave a row pointing nowhere is refused whole: the
    /// store stays at its schema and foreign keys are back on. (Such a row can only
    /// come from writing with foreign keys off, e.g. by hand.)
    #[test]
    fn a_migration_that_breaks_a_foreign_key_changes_nothing() {
        let conn = Connection::open_in_memory().unwrap();
        an_old_store(
            &conn,
            4,
            "PRAGMA foreign_keys = OFF;
             INSERT INTO deliveries (id, event_seq, webhook_seq, state, due_at, created_at)
             VALUES ('orphan', 99, 1, 'pending', 5, 0);",
        );
        let err = migrate(&conn).unwrap_err();
        assert!(
            matches!(&err, StoreError::Migration { version: 5, detail }
                if detail.contains("1 rows of deliveries pointing at rows of events")),
            "{err}"
        );
        assert!(err.to_string().contains("left as it was"), "{err}");
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, 4);
        let fk: i64 = conn
            .pragma_query_value(None, "foreign_keys", |r| r.get(0))
            .unwrap();
        assert_eq!(fk, 1);
        let unique: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE tbl_name = 'deliveries' AND name LIKE 'sqlite_autoindex%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(unique, 1, "the old table is still there");
    }

    /// A `sqlite_sequence` lowered behind the store's back (by hand, or a tool that
    /// rebuilt the file) does not make every emit fail: the next `seq` is past the
    /// highest row as well.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lowered_counter_does_not_stop_new_deliveries() {
        let store = SqliteStore::open(&StoreConfig::InMemory).unwrap();
        let conn = lock(&store.conn);
        conn.execute_batch(
            "INSERT INTO webhooks (id, target_url, active, basic_auth_username,
                 basic_auth_password, additional_headers, created_at)
             VALUES ('w', 'http://127.0.0.1:9/', 1, '', '', '{}', 0);
             INSERT INTO events (id, event_type, created_at, digest, body)
             VALUES ('e', 'COURSE_ENROLLMENT', 0, 'd', x'7b7d');",
        )
        .unwrap();
        let mut next = None;
        let first = store.ids.insert(&conn, &mut next, 1, 1, 0).unwrap();
        conn.execute_batch("UPDATE sqlite_sequence SET seq = 0 WHERE name = 'deliveries'")
            .unwrap();
        let second = store.ids.insert(&conn, &mut None, 1, 1, 0).unwrap();
        assert_eq!(store.ids.ids.seq(&first), Some(1));
        assert_eq!(store.ids.ids.seq(&second), Some(2));
    }

    proptest::proptest! {
        /// A scheduler turn claims exactly the `limit` earliest `(due_at, seq)` of
        /// what each active webhook with room may take (its `room` earliest pending
        /// deliveries), whatever the ties, the in-flight counts and the inactive
        /// webhooks — though it reads only the webhooks that can contribute.
        #[test]
        fn a_turn_claims_the_earliest_deliveries_webhooks_have_room_for(
            webhooks in proptest::collection::vec((proptest::bool::weighted(0.8), 0usize..4), 1..7),
            deliveries in proptest::collection::vec((0usize..7, 0i64..6, proptest::bool::weighted(0.8)), 0..40),
            limit in 0usize..12,
            per_webhook in 1usize..5,
            now in 0i64..6,
        ) {
            let store = SqliteStore::open(&StoreConfig::InMemory).unwrap();
            let mut conn = lock(&store.conn);
            conn.execute_batch(
                "INSERT INTO events (id, event_type, created_at, digest, body)
                 VALUES ('e', 'COURSE_ENROLLMENT', 0, 'd', x'7b7d');",
            )
            .unwrap();
            let mut in_flight = HashMap::new();
            for (i, (active, busy)) in webhooks.iter().enumerate() {
                conn.execute(
                    "INSERT INTO webhooks (seq, id, target_url, active, basic_auth_username,
                         basic_auth_password, additional_headers, created_at)
                     VALUES (?1, ?2, 'http://127.0.0.1:9/', ?3, '', '', '{}', 0)",
                    params![i as i64 + 1, format!("w{i}"), active],
                )
                .unwrap();
                if *busy > 0 {
                    in_flight.insert(i as i64 + 1, *busy);
                }
            }
            // (due_at, seq) of each webhook's pending deliveries.
            let mut pending: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
            for (n, (w, due, is_pending)) in deliveries.iter().enumerate() {
                let webhook_seq = (*w % webhooks.len()) as i64 + 1;
                let seq = n as i64 + 1;
                conn.execute(
                    "INSERT INTO deliveries (seq, id, event_seq, webhook_seq, state, due_at, created_at)
                     VALUES (?1, ?2, 1, ?3, ?4, ?5, 0)",
                    params![seq, format!("d{n}"), webhook_seq,
                            if *is_pending { "pending" } else { "delivered" }, due],
                )
                .unwrap();
                if *is_pending {
                    pending.entry(webhook_seq).or_default().push((*due, seq));
                }
            }
            let mut model: Vec<(i64, i64)> = Vec::new();
            for (i, (active, busy)) in webhooks.iter().enumerate() {
                let room = per_webhook.saturating_sub(*busy).min(limit);
                let mut due: Vec<(i64, i64)> = pending
                    .get(&(i as i64 + 1))
                    .into_iter()
                    .flatten()
                    .copied()
                    .filter(|(at, _)| *active && *at <= now)
                    .collect();
                due.sort();
                model.extend(due.into_iter().take(room));
            }
            model.sort();
            model.truncate(limit);
            let want: Vec<i64> = model.iter().map(|(_, seq)| *seq).collect();

            let tx = conn.transaction().unwrap();
            let claimed = claim_in(&tx, now, now, limit, per_webhook, &in_flight).unwrap();
            let got: Vec<i64> = claimed.iter().map(|c| c.delivery_seq).collect();
            proptest::prop_assert_eq!(&got, &want);
            for c in &claimed {
                let state: String = tx
                    .query_row("SELECT state FROM deliveries WHERE seq = ?1", [c.delivery_seq], |r| r.get(0))
                    .unwrap();
                proptest::prop_assert_eq!(state, "inflight");
            }
        }
    }

    /// A new store file holds webhook passwords in clear (S3 keeps them to send):
    /// it and its WAL are readable by their owner only; a file that exists keeps its
    /// mode.
    #[cfg(unix)]
    #[tokio::test]
    async fn a_new_store_file_is_private_to_its_owner() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = scratch_dir("mode");
        let path = dir.join("new.db");
        let store = SqliteStore::open(&StoreConfig::File(path.clone())).unwrap();
        store
            .create_webhook(hookjar_core::NewWebhook::to("http://127.0.0.1:9/"), 0)
            .await
            .unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.join("new.db-wal")), 0o600);
        drop(store);
        let shared = dir.join("shared.db");
        std::fs::write(&shared, b"").unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o640)).unwrap();
        SqliteStore::open(&StoreConfig::File(shared.clone())).unwrap();
        assert_eq!(mode(&shared), 0o640, "an existing file keeps its mode");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Two connections that migrate one file at once (two programs using the
    /// library; `hookjar serve` itself holds the file's owner lock first): the
    /// second waits for the first and finds the work done.
    #[test]
    fn two_connections_migrating_at_once_both_succeed() {
        let dir = scratch_dir("migrate-race");
        let path = dir.join("s4.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.pragma_update(None, "journal_mode", "WAL").unwrap();
            an_old_store(
                &conn,
                4,
                "INSERT INTO deliveries (id, event_seq, webhook_seq, state, due_at, created_at)
                 VALUES ('old', 1, 1, 'pending', 5, 0);",
            );
        }
        let start = std::sync::Arc::new(std::sync::Barrier::new(2));
        let runs: Vec<_> = (0..2)
            .map(|_| {
                let (path, start) = (path.clone(), std::sync::Arc::clone(&start));
                std::thread::spawn(move || {
                    let conn = Connection::open(&path).unwrap();
                    conn.busy_timeout(std::time::Duration::from_secs(10))
                        .unwrap();
                    start.wait();
                    migrate(&conn).map_err(|e| e.to_string())
                })
            })
            .collect();
        for run in runs {
            run.join().unwrap().unwrap();
        }
        let conn = Connection::open(&path).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let keys: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM meta WHERE key = 'delivery_id_key'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(keys, 1);
        drop(conn);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
