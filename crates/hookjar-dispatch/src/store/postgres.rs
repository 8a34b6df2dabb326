//! The PostgreSQL backend (`--db postgres://USER@HOST:PORT/DB`): several dispatcher
//! processes share one database.
//!
//! Driver: `tokio-postgres` with a `deadpool-postgres` pool. Both are async all the
//! way (no blocking pool, unlike SQLite), widely used and small; the queries are
//! plain SQL strings prepared once per pooled connection (`prepare_cached`) and
//! checked at run time by the contract tests, which run against a real server —
//! `sqlx`'s compile-time checking would need a database at build time. Connections
//! are TCP, TLS over TCP (rustls, chosen by the URL's `sslmode`: [`tls`]) or a Unix
//! socket (`host=/path`).
//!
//! # Several processes on one database
//! - **Claims under a lease.** A process claims due deliveries with
//!   `UPDATE … WHERE seq IN (SELECT … FOR UPDATE SKIP LOCKED LIMIT n) RETURNING …`,
//!   so two processes never claim the same delivery and never wait for each other.
//!   A claimed delivery is `inflight` with `claimed_by` (the process) and
//!   `lease_until` (database time + the lease, [`DEFAULT_LEASE`]); its attempt is
//!   written ahead (verdict `started`) in the same transaction.
//! - **A dead process.** Its leases run out. Every process, every third of a lease
//!   ([`PgStore::recheck_every`]), renews its own leases (a live process keeps its
//!   claims however long their results wait to be written) and looks for expired
//!   ones; the first to find one takes it over (again `FOR UPDATE SKIP LOCKED`): the interrupted
//!   attempt counts as made, is logged as `unknown`, and the delivery retries after
//!   its normal back-off (S19), exactly as after a SQLite restart.
//! - **Wake-ups.** `emit` and `redeliver` send `NOTIFY hookjar_wake` in their
//!   transaction; every process `LISTEN`s on a connection of its own and wakes its
//!   engine at once ([`PgStore::subscribe`]).
//! - **One truth.** Deactivation (`UPDATE … WHERE active`), the revision check of
//!   S16 (the webhook rows of a batch are locked in order while it is recorded) and
//!   the X3 timeline anchor (`meta`, under a table lock) live in the database, so
//!   every process agrees.
//!
//! Migrations: [`MIGRATIONS`], counted in `hookjar_schema`, run under an advisory
//! lock so processes that start together migrate once.

use std::collections::{HashMap, HashSet};
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use hookjar_core::timeline::Timeline;
use hookjar_core::webhook::{Headers, normalise_url, webhook_id};
use hookjar_core::{DeactivateReason, EventType, Payload, Verdict, Webhook, WebhookPatch};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_postgres::{GenericClient, Row};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{
    AttemptRecord, AttemptView, Claimed, DeliveryView, Interrupted, NewEvent, RecordEffects,
    Redeliver, headers_json, parse_timeline,
};
use crate::clock::Micros;
use crate::error::StoreError;

/// How long a claim holds when its process stops renewing it (dies): another
/// process then retries the delivery. Longer than any attempt (the POST timeout,
/// 10 s by default, times the redirects followed).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

pub mod tls;

/// The channel of `LISTEN`/`NOTIFY` wake-ups.
const CHANNEL: &str = "hookjar_wake";

/// Pooled connections per process.
const POOL_SIZE: usize = 16;

/// Is `db` a PostgreSQL URL?
pub fn is_url(db: &str) -> bool {
    db.starts_with("postgres://") || db.starts_with("postgresql://")
}

/// A PostgreSQL store's URL and lease.
#[derive(Clone, PartialEq, Eq)]
pub struct PgConfig {
    /// `postgres://USER[:PASSWORD]@HOST:PORT/DB[?host=/socket/dir]`, with
    /// `sslmode=disable|prefer|require|verify-full` and `sslrootcert=FILE` ([`tls`]).
    pub url: String,
    /// How long a claim holds when its process dies.
    pub lease: Duration,
}

impl PgConfig {
    /// A URL with the default lease.
    pub fn new(url: impl Into<String>) -> PgConfig {
        PgConfig {
            url: url.into(),
            lease: DEFAULT_LEASE,
        }
    }

    /// The URL without its password, for messages and logs.
    pub fn redacted(&self) -> String {
        // postgres://user:secret@host → postgres://user:***@host
        let Some((scheme, rest)) = self.url.split_once("://") else {
            return self.url.clone();
        };
        match rest.split_once('@') {
            Some((userinfo, host)) if userinfo.contains(':') => {
                let user = userinfo.split(':').next().unwrap_or("");
                format!("{scheme}://{user}:***@{host}")
            }
            _ => self.url.clone(),
        }
    }
}

impl std::fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConfig")
            .field("url", &self.redacted())
            .field("lease", &self.lease)
            .finish()
    }
}

/// Schema migrations, in order; `hookjar_schema.version` is how many have run.
pub const MIGRATIONS: &[&str] = &[
    // 1: the schema of SQLite's migrations 1–3 (issue #8), plus leases.
    "
    CREATE TABLE webhooks (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        target_url TEXT NOT NULL,
        active BOOLEAN NOT NULL,
        deactivate_reason TEXT,
        event_type TEXT,
        basic_auth_username TEXT NOT NULL,
        basic_auth_password TEXT NOT NULL,
        additional_headers TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        revision BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE events (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        event_type TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        digest TEXT NOT NULL,
        body BYTEA NOT NULL
    );
    CREATE TABLE deliveries (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        event_seq BIGINT NOT NULL REFERENCES events(seq) ON DELETE CASCADE,
        webhook_seq BIGINT NOT NULL REFERENCES webhooks(seq) ON DELETE CASCADE,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        due_at BIGINT,
        created_at BIGINT NOT NULL,
        finished_at BIGINT,
        note TEXT,
        claimed_by TEXT,
        lease_until TIMESTAMPTZ
    );
    CREATE INDEX deliveries_webhook_due ON deliveries(webhook_seq, due_at) WHERE state = 'pending';
    CREATE INDEX deliveries_webhook ON deliveries(webhook_seq, state);
    CREATE INDEX deliveries_lease ON deliveries(lease_until) WHERE state = 'inflight';
    CREATE INDEX deliveries_event ON deliveries(event_seq);
    CREATE TABLE attempts (
        delivery_seq BIGINT NOT NULL REFERENCES deliveries(seq) ON DELETE CASCADE,
        n INTEGER NOT NULL,
        started_at BIGINT NOT NULL,
        wall_at BIGINT,
        latency_us BIGINT NOT NULL,
        status INTEGER,
        error TEXT,
        verdict TEXT NOT NULL,
        detail TEXT NOT NULL,
        next_attempt_at BIGINT,
        revision BIGINT NOT NULL DEFAULT 0,
        stale BOOLEAN NOT NULL DEFAULT FALSE,
        PRIMARY KEY (delivery_seq, n)
    );
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    ",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// A handle to a PostgreSQL store; clones share one pool.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    config: PgConfig,
    pg: tokio_postgres::Config,
    /// The TLS connector of `sslmode`, for the `LISTEN` connection.
    tls: MakeRustlsConnect,
    /// This process, as `claimed_by` names it.
    me: String,
    /// The `LISTEN` task, stopped with the store.
    listener: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = self
            .listener
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            task.abort();
        }
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("url", &self.inner.config.redacted())
            .field("me", &self.inner.me)
            .finish_non_exhaustive()
    }
}

const WEBHOOK_COLUMNS: &str = "seq, id, target_url, active, deactivate_reason, event_type, \
     basic_auth_username, basic_auth_password, additional_headers";

impl PgStore {
    /// Connects, checks the server answers and brings the schema up to date.
    pub async fn connect(config: &PgConfig) -> Result<PgStore, StoreError> {
        let failed = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Connect {
            url: config.redacted(),
            source,
        };
        let (url, settings) = tls::split_url(&config.url)?;
        let mut pg = tokio_postgres::Config::from_str(&url).map_err(|e| failed(e.into()))?;
        pg.ssl_mode(settings.driver_mode());
        let tls = settings.connector()?;
        let manager = Manager::from_config(
            pg.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(10)))
            .build()
            .map_err(|e| failed(e.into()))?;
        let mut client = pool.get().await.map_err(|e| {
            match tls::handshake_error(&e, &config.redacted(), settings.mode) {
                Some(tls) => StoreError::PgTls(tls),
                // The pool's message alone hides the cause ("error performing
                // TLS handshake": "server does not support TLS").
                None => failed(tls::chain(&e).into()),
            }
        })?;
        migrate(&mut client).await?;
        drop(client);
        Ok(PgStore {
            inner: Arc::new(Inner {
                pool,
                config: config.clone(),
                pg,
                tls,
                me: format!(
                    "{}-{}",
                    std::process::id(),
                    &webhook_id(rand::random())[..8]
                ),
                listener: std::sync::Mutex::new(None),
            }),
        })
    }

    /// The process name written in `claimed_by`.
    pub fn claimant(&self) -> &str {
        &self.inner.me
    }

    /// How often to look for expired leases: a third of the lease.
    pub fn recheck_every(&self) -> Duration {
        (self.inner.config.lease / 3).max(Duration::from_millis(100))
    }

    /// `LISTEN`s for other processes' wake-ups on a connection of its own and
    /// notifies `wake` for each; reconnects after a second when the connection is
    /// lost. Stops with the store.
    pub fn subscribe(&self, wake: Arc<Notify>) {
        let pg = self.inner.pg.clone();
        let tls = self.inner.tls.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Err(e) = listen(&pg, tls.clone(), &wake).await {
                    tracing::warn!(error = %e, "lost the PostgreSQL LISTEN connection; reconnecting in 1 s");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                // Whatever was emitted meanwhile is due now.
                wake.notify_one();
            }
        });
        let old = self
            .inner
            .listener
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(task);
        if let Some(old) = old {
            old.abort();
        }
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.inner
            .pool
            .get()
            .await
            .map_err(|e| StoreError::Pool(e.to_string()))
    }

    fn lease_secs(&self) -> f64 {
        self.inner.config.lease.as_secs_f64()
    }

    pub async fn timeline(&self, wall_now: Micros, scale: f64) -> Result<Timeline, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        tx.batch_execute("LOCK TABLE meta IN EXCLUSIVE MODE")
            .await?;
        let stored = tx
            .query_opt("SELECT value FROM meta WHERE key = 'timeline'", &[])
            .await?
            .map(|r| r.get::<_, String>(0));
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
                "INSERT INTO meta (key, value) VALUES ('timeline', $1)
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                &[&format!(
                    "{} {} {}",
                    timeline.wall, timeline.dispatcher, timeline.scale
                )],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(timeline)
    }

    pub async fn kept_api_key(&self, candidate: String) -> Result<String, StoreError> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO meta (key, value) VALUES ('api_key', $1) ON CONFLICT (key) DO NOTHING",
            &[&candidate],
        )
        .await?;
        Ok(
            c.query_one("SELECT value FROM meta WHERE key = 'api_key'", &[])
                .await?
                .get(0),
        )
    }

    // ----- webhooks (S1–S4) -----

    pub async fn list_webhooks(
        &self,
        offset: u64,
        limit: u64,
    ) -> Result<(u64, Vec<Webhook>), StoreError> {
        let c = self.client().await?;
        let count: i64 = c
            .query_one("SELECT COUNT(*) FROM webhooks", &[])
            .await?
            .get(0);
        let stmt = c
            .prepare_cached(&format!(
                "SELECT {WEBHOOK_COLUMNS} FROM webhooks ORDER BY seq LIMIT $1 OFFSET $2"
            ))
            .await?;
        let rows = c.query(&stmt, &[&clamp(limit), &clamp(offset)]).await?;
        let hooks = rows
            .iter()
            .map(|r| read_webhook(r).map(|(_, w)| w))
            .collect::<Result<_, _>>()?;
        Ok((count as u64, hooks))
    }

    pub async fn get_webhook(&self, id: String) -> Result<Option<Webhook>, StoreError> {
        let c = self.client().await?;
        Ok(find_webhook(&**c, &id, false).await?.map(|(_, w)| w))
    }

    pub async fn create_webhook(
        &self,
        new: hookjar_core::NewWebhook,
        now: Micros,
    ) -> Result<Webhook, StoreError> {
        let c = self.client().await?;
        let webhook = Webhook::create(webhook_id(rand::random()), new);
        c.execute(
            "INSERT INTO webhooks (id, target_url, active, deactivate_reason, event_type,
                basic_auth_username, basic_auth_password, additional_headers, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &webhook.id,
                &webhook.target_url,
                &webhook.active,
                &webhook.deactivate_reason.map(|r| r.as_str()),
                &webhook.event_type.map(|t| t.as_str()),
                &webhook.basic_auth_username,
                &webhook.basic_auth_password,
                &headers_json(&webhook.additional_headers),
                &now,
            ],
        )
        .await?;
        Ok(webhook)
    }

    pub async fn update_webhook(
        &self,
        id: String,
        patch: WebhookPatch,
    ) -> Result<Option<Webhook>, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let Some((seq, mut webhook)) = find_webhook(&*tx, &id, true).await? else {
            return Ok(None);
        };
        webhook.apply(patch);
        write_webhook(&*tx, seq, &webhook).await?;
        if !webhook.active {
            drop_pending(&*tx, seq, "webhook deactivated by an update").await?;
        }
        tx.commit().await?;
        Ok(Some(webhook))
    }

    pub async fn deactivate_webhook(
        &self,
        id: String,
        reason: DeactivateReason,
    ) -> Result<Option<Webhook>, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let Some((seq, mut webhook)) = find_webhook(&*tx, &id, true).await? else {
            return Ok(None);
        };
        webhook.deactivate(reason);
        write_webhook(&*tx, seq, &webhook).await?;
        drop_pending(&*tx, seq, &format!("webhook deactivated ({reason})")).await?;
        tx.commit().await?;
        Ok(Some(webhook))
    }

    pub async fn delete_webhook(&self, id: String) -> Result<bool, StoreError> {
        let c = self.client().await?;
        Ok(c.execute("DELETE FROM webhooks WHERE id = $1", &[&id])
            .await?
            > 0)
    }

    // ----- events and deliveries (X1, S12, S19) -----

    pub async fn emit(&self, event: NewEvent, now: Micros) -> Result<usize, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let event_seq: i64 = tx
            .query_one(
                "INSERT INTO events (id, event_type, created_at, digest, body)
                 VALUES ($1, $2, $3, $4, $5) RETURNING seq",
                &[
                    &event.id,
                    &event.event_type.as_str(),
                    &now,
                    &event.body.digest().to_string(),
                    &event.body.bytes().as_ref(),
                ],
            )
            .await?
            .get(0);
        // FOR KEY SHARE: a webhook being deleted by another process waits for this
        // transaction (its deliveries then go with it) instead of making the
        // deliveries' foreign key fail the whole emit; updates are not held up.
        let stmt = tx
            .prepare_cached(&format!(
                "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE active ORDER BY seq FOR KEY SHARE"
            ))
            .await?;
        let mut seen = HashSet::new();
        let mut targets = Vec::new();
        for row in tx.query(&stmt, &[]).await? {
            let (seq, w) = read_webhook(&row)?;
            if w.receives(event.event_type) && seen.insert(normalise_url(&w.target_url)) {
                targets.push(seq);
            }
        }
        if !targets.is_empty() {
            let ids: Vec<String> = targets.iter().map(|_| webhook_id(rand::random())).collect();
            tx.execute(
                "INSERT INTO deliveries (id, event_seq, webhook_seq, state, attempts, due_at, created_at)
                 SELECT i, $2, w, 'pending', 0, $3, $3 FROM UNNEST($1::text[], $4::bigint[]) AS t(i, w)",
                &[&ids, &event_seq, &now, &targets],
            )
            .await?;
            tx.batch_execute(&format!("NOTIFY {CHANNEL}")).await?;
        }
        tx.commit().await?;
        Ok(targets.len())
    }

    pub async fn next_due(&self, busy: Vec<i64>) -> Result<Option<Micros>, StoreError> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(
                "SELECT MIN((SELECT d.due_at FROM deliveries d
                             WHERE d.state = 'pending' AND d.webhook_seq = w.seq
                             ORDER BY d.due_at LIMIT 1))
                 FROM webhooks w WHERE w.active AND NOT (w.seq = ANY($1))",
            )
            .await?;
        Ok(c.query_one(&stmt, &[&busy]).await?.get(0))
    }

    pub async fn claim_due(
        &self,
        now: Micros,
        wall_now: Micros,
        limit: usize,
        per_webhook: usize,
        in_flight: HashMap<i64, usize>,
    ) -> Result<Vec<Claimed>, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        // Active webhooks whose earliest pending delivery is due, earliest first.
        let webhooks = tx
            .prepare_cached(&format!(
                "SELECT {WEBHOOK_COLUMNS}, revision FROM (
                    SELECT w.*, (SELECT d.due_at FROM deliveries d
                                 WHERE d.state = 'pending' AND d.webhook_seq = w.seq
                                 ORDER BY d.due_at LIMIT 1) AS first_due
                    FROM webhooks w WHERE w.active) x
                 WHERE first_due <= $1 ORDER BY first_due, seq"
            ))
            .await?;
        let claim = tx
            .prepare_cached(
                "UPDATE deliveries d
                    SET state = 'inflight', attempts = d.attempts + 1, claimed_by = $4,
                        lease_until = now() + make_interval(secs => $5)
                   FROM events e
                  WHERE e.seq = d.event_seq AND d.seq IN (
                        SELECT seq FROM deliveries
                         WHERE state = 'pending' AND webhook_seq = $1 AND due_at <= $2
                         ORDER BY due_at LIMIT $3 FOR UPDATE SKIP LOCKED)
                 RETURNING d.seq, d.id, d.attempts - 1, d.due_at, e.event_type, e.body",
            )
            .await?;
        let ahead = tx
            .prepare_cached(
                "INSERT INTO attempts
                   (delivery_seq, n, started_at, wall_at, latency_us, status, error, verdict,
                    detail, next_attempt_at, revision, stale)
                 SELECT s, n, $3, $4, 0, NULL, NULL, 'started', 'POST in flight', NULL, $5, FALSE
                   FROM UNNEST($1::bigint[], $2::int[]) AS t(s, n)
                 ON CONFLICT (delivery_seq, n) DO UPDATE SET
                   started_at = EXCLUDED.started_at, wall_at = EXCLUDED.wall_at,
                   latency_us = 0, status = NULL, error = NULL, verdict = 'started',
                   detail = EXCLUDED.detail, next_attempt_at = NULL,
                   revision = EXCLUDED.revision, stale = FALSE",
            )
            .await?;
        let mut out: Vec<(Micros, Claimed)> = Vec::new();
        for row in tx.query(&webhooks, &[&now]).await? {
            let remaining = limit - out.len();
            if remaining == 0 {
                break;
            }
            let (webhook_seq, webhook) = read_webhook(&row)?;
            let webhook = Arc::new(webhook);
            let revision: i64 = row.get(9);
            let busy = in_flight.get(&webhook_seq).copied().unwrap_or(0);
            let room = per_webhook.saturating_sub(busy).min(remaining);
            if room == 0 {
                continue;
            }
            let rows = tx
                .query(
                    &claim,
                    &[
                        &webhook_seq,
                        &now,
                        &(room as i64),
                        &self.inner.me,
                        &self.lease_secs(),
                    ],
                )
                .await?;
            let (mut seqs, mut ns) = (Vec::new(), Vec::new());
            for r in rows {
                let attempts: i32 = r.get(2);
                let body: Vec<u8> = r.get(5);
                seqs.push(r.get::<_, i64>(0));
                ns.push(attempts);
                out.push((
                    r.get(3),
                    Claimed {
                        delivery_seq: r.get(0),
                        delivery_id: r.get(1),
                        attempt: u32::try_from(attempts).unwrap_or(u32::MAX),
                        webhook: Arc::clone(&webhook),
                        webhook_seq,
                        revision,
                        event_type: r.get(4),
                        body: Payload::from_bytes(body),
                    },
                ));
            }
            if !seqs.is_empty() {
                tx.execute(&ahead, &[&seqs, &ns, &now, &wall_now, &revision])
                    .await?;
            }
        }
        tx.commit().await?;
        out.sort_by_key(|(due, c)| (*due, c.delivery_seq));
        Ok(out.into_iter().map(|(_, d)| d).collect())
    }

    pub async fn record(&self, batch: Vec<AttemptRecord>) -> Result<RecordEffects, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let mut effects = RecordEffects::default();
        // Lock the batch's webhooks in one order (no deadlock between processes):
        // no update from another process can slip between a revision check and
        // the verdict it allows (S16).
        let mut webhooks: Vec<i64> = batch.iter().map(|r| r.webhook_seq).collect();
        webhooks.sort_unstable();
        webhooks.dedup();
        tx.execute(
            "SELECT 1 FROM webhooks WHERE seq = ANY($1) ORDER BY seq FOR NO KEY UPDATE",
            &[&webhooks],
        )
        .await?;
        // The delivery's row is locked too, and its claim read: a result is applied
        // only by the process that still holds the claim. One that froze past its
        // lease (a pause, a stalled link to the database) finds the attempt taken
        // over, counted and carried on by another process; writing over that would
        // restart the back-off and allow more than 61 POSTs (S19).
        let current_of = tx
            .prepare_cached(
                "SELECT w.revision, d.claimed_by = $2 AND d.attempts = $3
                 FROM deliveries d JOIN webhooks w ON w.seq = d.webhook_seq
                 WHERE d.seq = $1 FOR UPDATE OF d",
            )
            .await?;
        let release = tx
            .prepare_cached(
                "UPDATE deliveries SET claimed_by = NULL, lease_until = NULL
                 WHERE seq = $1 AND claimed_by = $2",
            )
            .await?;
        let log = tx
            .prepare_cached(
                "INSERT INTO attempts
                   (delivery_seq, n, started_at, wall_at, latency_us, status, error, verdict,
                    detail, next_attempt_at, revision, stale)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                 ON CONFLICT (delivery_seq, n) DO UPDATE SET
                   started_at = EXCLUDED.started_at, wall_at = EXCLUDED.wall_at,
                   latency_us = EXCLUDED.latency_us, status = EXCLUDED.status,
                   error = EXCLUDED.error, verdict = EXCLUDED.verdict, detail = EXCLUDED.detail,
                   next_attempt_at = EXCLUDED.next_attempt_at, revision = EXCLUDED.revision,
                   stale = EXCLUDED.stale",
            )
            .await?;
        let end = tx
            .prepare_cached(
                "UPDATE deliveries SET state = $2, attempts = $3, due_at = NULL, finished_at = $4,
                    note = $5, claimed_by = NULL, lease_until = NULL WHERE seq = $1",
            )
            .await?;
        let requeue = tx
            .prepare_cached(
                "UPDATE deliveries SET
                    state = CASE WHEN (SELECT active FROM webhooks WHERE seq = $4)
                                 THEN 'pending' ELSE 'dropped' END,
                    due_at = CASE WHEN (SELECT active FROM webhooks WHERE seq = $4)
                                  THEN $3::bigint ELSE NULL END,
                    note = CASE WHEN (SELECT active FROM webhooks WHERE seq = $4)
                                THEN note ELSE 'dropped: webhook inactive' END,
                    attempts = $2, claimed_by = NULL, lease_until = NULL
                 WHERE seq = $1 AND state = 'inflight'",
            )
            .await?;
        for rec in &batch {
            let n = attempt_i32(rec.attempt);
            let made = n.saturating_add(1);
            let Some(row) = tx
                .query_opt(&current_of, &[&rec.delivery_seq, &self.inner.me, &made])
                .await?
            else {
                effects.skipped += 1;
                continue;
            };
            if row.get::<_, Option<bool>>(1) != Some(true) {
                effects.lost += 1;
                continue;
            }
            let current: i64 = row.get(0);
            let stale = current != rec.revision;
            let cols = rec.columns();
            let status = cols.status.map(i32::from);
            tx.execute(
                &log,
                &[
                    &rec.delivery_seq,
                    &n,
                    &rec.started_at,
                    &rec.wall_at,
                    &rec.latency_us,
                    &status,
                    &cols.error,
                    &cols.label,
                    &rec.detail,
                    &cols.next_at,
                    &rec.revision,
                    &stale,
                ],
            )
            .await?;
            match rec.verdict {
                Verdict::Delivered => {
                    tx.execute(
                        &end,
                        &[
                            &rec.delivery_seq,
                            &"delivered",
                            &made,
                            &rec.finished_at,
                            &None::<String>,
                        ],
                    )
                    .await?;
                }
                Verdict::RetryAfter { .. } => {
                    let requeued = tx
                        .execute(
                            &requeue,
                            &[&rec.delivery_seq, &made, &cols.next_at, &rec.webhook_seq],
                        )
                        .await?;
                    if requeued == 0 {
                        // Dropped while in flight (its webhook was deactivated): it
                        // stays dropped; only the claim goes.
                        tx.execute(&release, &[&rec.delivery_seq, &self.inner.me])
                            .await?;
                    }
                }
                Verdict::Deactivate { reason } if stale => {
                    effects.stale += 1;
                    tx.execute(
                        &end,
                        &[
                            &rec.delivery_seq,
                            &"failed",
                            &made,
                            &rec.finished_at,
                            &Some(format!(
                                "ended ({reason}), not applied to the webhook: it was updated while the attempt was in flight"
                            )),
                        ],
                    )
                    .await?;
                }
                Verdict::Deactivate { reason } => {
                    tx.execute(
                        &end,
                        &[
                            &rec.delivery_seq,
                            &"failed",
                            &made,
                            &rec.finished_at,
                            &Some(format!("webhook deactivated ({reason})")),
                        ],
                    )
                    .await?;
                    let changed = tx
                        .query_opt(
                            "UPDATE webhooks SET active = FALSE, deactivate_reason = $2,
                                revision = revision + 1
                             WHERE seq = $1 AND active RETURNING id",
                            &[&rec.webhook_seq, &reason.as_str()],
                        )
                        .await?;
                    let dropped = drop_pending(
                        &*tx,
                        rec.webhook_seq,
                        &format!("webhook deactivated ({reason})"),
                    )
                    .await?;
                    if let Some(row) = changed {
                        effects.deactivated.push((row.get(0), reason, dropped));
                    }
                }
            }
        }
        tx.commit().await?;
        Ok(effects)
    }

    /// Renews this process's own leases, then returns the attempts whose lease
    /// expired (their process died), taken over by this process under a new lease;
    /// deliveries in flight without a written-ahead attempt go back to pending.
    pub async fn interrupted(&self) -> Result<Vec<Interrupted>, StoreError> {
        let mut c = self.client().await?;
        // This process is alive: its own claims are renewed, never taken over
        // (their results may be waiting to be written, however long that takes).
        c.execute(
            "UPDATE deliveries SET lease_until = now() + make_interval(secs => $2)
              WHERE state = 'inflight' AND claimed_by = $1",
            &[&self.inner.me, &self.lease_secs()],
        )
        .await?;
        let tx = c.transaction().await?;
        let rows = tx
            .query(
                "UPDATE deliveries d SET claimed_by = $1, lease_until = now() + make_interval(secs => $2)
                  WHERE d.seq IN (SELECT seq FROM deliveries
                                   WHERE state = 'inflight' AND (lease_until IS NULL OR lease_until < now())
                                     AND claimed_by IS DISTINCT FROM $1
                                   FOR UPDATE SKIP LOCKED)
                 RETURNING d.seq, d.webhook_seq, d.attempts",
                &[&self.inner.me, &self.lease_secs()],
            )
            .await?;
        let started = tx
            .prepare_cached(
                "SELECT n, revision, started_at, wall_at FROM attempts
                 WHERE delivery_seq = $1 AND n = $2 AND verdict = 'started'",
            )
            .await?;
        let mut out = Vec::new();
        for r in rows {
            let delivery_seq: i64 = r.get(0);
            let webhook_seq: i64 = r.get(1);
            let attempts: i32 = r.get(2);
            match tx
                .query_opt(&started, &[&delivery_seq, &(attempts - 1)])
                .await?
            {
                Some(a) => out.push(Interrupted {
                    delivery_seq,
                    webhook_seq,
                    attempt: u32::try_from(a.get::<_, i32>(0)).unwrap_or(u32::MAX),
                    revision: a.get(1),
                    started_at: a.get(2),
                    wall_at: a.get(3),
                }),
                None => {
                    tx.execute(
                        "UPDATE deliveries SET state = 'pending', claimed_by = NULL, lease_until = NULL
                         WHERE seq = $1",
                        &[&delivery_seq],
                    )
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    pub async fn drop_pending_of_inactive(&self) -> Result<usize, StoreError> {
        let c = self.client().await?;
        Ok(c.execute(
            "UPDATE deliveries SET state = 'dropped', due_at = NULL,
                note = 'dropped: webhook inactive'
             WHERE state = 'pending'
               AND webhook_seq IN (SELECT seq FROM webhooks WHERE NOT active)",
            &[],
        )
        .await? as usize)
    }

    pub async fn pending_count(&self) -> Result<u64, StoreError> {
        let c = self.client().await?;
        let n: i64 = c
            .query_one(
                "SELECT COUNT(*) FROM deliveries WHERE state IN ('pending', 'inflight')",
                &[],
            )
            .await?
            .get(0);
        Ok(n as u64)
    }

    pub async fn deliveries_of(
        &self,
        webhook: String,
        offset: u64,
        limit: u64,
        timeline: Timeline,
    ) -> Result<Option<(u64, Vec<DeliveryView>)>, StoreError> {
        let c = self.client().await?;
        let Some((wseq, _)) = find_webhook(&**c, &webhook, false).await? else {
            return Ok(None);
        };
        let count: i64 = c
            .query_one(
                "SELECT COUNT(*) FROM deliveries WHERE webhook_seq = $1",
                &[&wseq],
            )
            .await?
            .get(0);
        let rows = c
            .query(
                "SELECT d.seq, d.id, e.id, e.event_type, e.digest, d.state, d.created_at, d.due_at, d.note
                 FROM deliveries d JOIN events e ON e.seq = d.event_seq
                 WHERE d.webhook_seq = $1 ORDER BY d.seq LIMIT $2 OFFSET $3",
                &[&wseq, &clamp(limit), &clamp(offset)],
            )
            .await?;
        let seqs: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        let mut attempts: HashMap<i64, Vec<AttemptView>> = HashMap::new();
        for r in c
            .query(
                "SELECT delivery_seq, n, started_at, status, error, latency_us, verdict, detail,
                    next_attempt_at, wall_at, stale
                 FROM attempts WHERE delivery_seq = ANY($1) ORDER BY delivery_seq, n",
                &[&seqs],
            )
            .await?
        {
            attempts.entry(r.get(0)).or_default().push(AttemptView {
                attempt: u32::try_from(r.get::<_, i32>(1)).unwrap_or(u32::MAX),
                at: crate::clock::format_micros(r.get(2)),
                wall_at: r.get::<_, Option<i64>>(9).map(crate::clock::format_micros),
                stale: r.get(10),
                status: r
                    .get::<_, Option<i32>>(3)
                    .and_then(|s| u16::try_from(s).ok()),
                error: r.get(4),
                latency_ms: r.get::<_, i64>(5) as f64 / 1000.0,
                verdict: r.get(6),
                detail: r.get(7),
                next_attempt_at: r.get::<_, Option<i64>>(8).map(crate::clock::format_micros),
            });
        }
        let out = rows
            .iter()
            .map(|r| {
                let state: String = r.get(5);
                let due = r.get::<_, Option<i64>>(7).filter(|_| state == "pending");
                DeliveryView {
                    id: r.get(1),
                    event: r.get(2),
                    event_type: r.get(3),
                    digest: r.get(4),
                    next_attempt_at: due.map(crate::clock::format_micros),
                    next_attempt_wall_at: due
                        .map(|d| crate::clock::format_micros(timeline.wall_at(d))),
                    state,
                    created_at: crate::clock::format_micros(r.get(6)),
                    note: r.get(8),
                    attempts: attempts.remove(&r.get::<_, i64>(0)).unwrap_or_default(),
                }
            })
            .collect();
        Ok(Some((count as u64, out)))
    }

    pub async fn redeliver(&self, delivery: String, now: Micros) -> Result<Redeliver, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let found = tx
            .query_opt(
                // The webhook cannot be deleted or deactivated before this commits.
                "SELECT d.event_seq, d.webhook_seq, w.active, w.id FROM deliveries d
                 JOIN webhooks w ON w.seq = d.webhook_seq WHERE d.id = $1 FOR SHARE OF w",
                &[&delivery],
            )
            .await?;
        let Some(found) = found else {
            return Ok(Redeliver::NotFound);
        };
        let (event_seq, webhook_seq, active, webhook): (i64, i64, bool, String) =
            (found.get(0), found.get(1), found.get(2), found.get(3));
        if !active {
            return Ok(Redeliver::Inactive(webhook));
        }
        let id = webhook_id(rand::random());
        tx.execute(
            "INSERT INTO deliveries (id, event_seq, webhook_seq, state, attempts, due_at, created_at)
             VALUES ($1, $2, $3, 'pending', 0, $4, $4)",
            &[&id, &event_seq, &webhook_seq, &now],
        )
        .await?;
        tx.batch_execute(&format!("NOTIFY {CHANNEL}")).await?;
        tx.commit().await?;
        Ok(Redeliver::Queued(id))
    }
}

/// Runs the migrations the database has not seen yet, under an advisory lock.
async fn migrate(client: &mut deadpool_postgres::Client) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    // Any constant: hookjar's migration lock ("hookjar" in ASCII).
    tx.batch_execute(
        "SELECT pg_advisory_xact_lock(7526752013183346);
         CREATE TABLE IF NOT EXISTS hookjar_schema (version BIGINT NOT NULL);",
    )
    .await?;
    let version: i64 = match tx
        .query_opt("SELECT version FROM hookjar_schema", &[])
        .await?
    {
        Some(r) => r.get(0),
        None => {
            tx.execute("INSERT INTO hookjar_schema (version) VALUES (0)", &[])
                .await?;
            0
        }
    };
    if version > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.batch_execute(sql).await?;
        tx.execute("UPDATE hookjar_schema SET version = $1", &[&(i as i64 + 1)])
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// One `LISTEN` session: returns when the connection is lost.
async fn listen(
    pg: &tokio_postgres::Config,
    tls: MakeRustlsConnect,
    wake: &Notify,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut conn) = pg.connect(tls).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        loop {
            match futures::future::poll_fn(|cx| conn.poll_message(cx)).await {
                Some(Ok(tokio_postgres::AsyncMessage::Notification(_))) => {
                    if tx.send(()).is_err() {
                        return Ok(());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            }
        }
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    while rx.recv().await.is_some() {
        wake.notify_one();
    }
    drop(client);
    match driver.await {
        Ok(r) => r,
        Err(_) => Ok(()),
    }
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn attempt_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn read_webhook(row: &Row) -> Result<(i64, Webhook), StoreError> {
    let corrupt = |column, detail: String| StoreError::Corrupt {
        table: "webhooks",
        column,
        detail,
    };
    let event_type = match row.try_get::<_, Option<String>>(5)? {
        None => None,
        Some(s) => Some(
            s.parse::<EventType>()
                .map_err(|e| corrupt("event_type", e.to_string()))?,
        ),
    };
    let deactivate_reason = match row.try_get::<_, Option<String>>(4)? {
        None => None,
        Some(s) => Some(
            DeactivateReason::from_code(&s)
                .ok_or_else(|| corrupt("deactivate_reason", s.clone()))?,
        ),
    };
    let headers: String = row.try_get(8)?;
    let additional_headers: Headers =
        serde_json::from_str(&headers).map_err(|e| corrupt("additional_headers", e.to_string()))?;
    Ok((
        row.try_get(0)?,
        Webhook {
            id: row.try_get(1)?,
            target_url: row.try_get(2)?,
            active: row.try_get(3)?,
            deactivate_reason,
            event_type,
            basic_auth_username: row.try_get(6)?,
            basic_auth_password: row.try_get(7)?,
            additional_headers,
        },
    ))
}

async fn find_webhook<C: GenericClient>(
    c: &C,
    id: &str,
    lock: bool,
) -> Result<Option<(i64, Webhook)>, StoreError> {
    let sql = format!(
        "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    match c.query_opt(&sql, &[&id]).await? {
        Some(row) => Ok(Some(read_webhook(&row)?)),
        None => Ok(None),
    }
}

async fn write_webhook<C: GenericClient>(c: &C, seq: i64, w: &Webhook) -> Result<(), StoreError> {
    c.execute(
        "UPDATE webhooks SET target_url = $2, active = $3, deactivate_reason = $4, event_type = $5,
            basic_auth_username = $6, basic_auth_password = $7, additional_headers = $8,
            revision = revision + 1
         WHERE seq = $1",
        &[
            &seq,
            &w.target_url,
            &w.active,
            &w.deactivate_reason.map(|r| r.as_str()),
            &w.event_type.map(|t| t.as_str()),
            &w.basic_auth_username,
            &w.basic_auth_password,
            &headers_json(&w.additional_headers),
        ],
    )
    .await?;
    Ok(())
}

/// Drops a deactivated webhook's pending deliveries (S15: nothing more is POSTed).
async fn drop_pending<C: GenericClient>(
    c: &C,
    webhook_seq: i64,
    why: &str,
) -> Result<usize, StoreError> {
    // The attempts in flight go too (their claims stay with their processes, whose
    // late answers are still logged): a retry verdict then requeues nothing, so a
    // re-activated webhook never gets an event from before (S16).
    Ok(c.execute(
        "UPDATE deliveries SET state = 'dropped', due_at = NULL, note = $2
         WHERE webhook_seq = $1 AND state IN ('pending', 'inflight')",
        &[&webhook_seq, &format!("dropped: {why}")],
    )
    .await? as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreConfig;

    #[test]
    fn urls_are_recognised_and_passwords_never_shown() {
        let pg = PgConfig::new("postgres://hookjar:s3cret@db.internal:5432/hookjar");
        assert_eq!(
            pg.redacted(),
            "postgres://hookjar:***@db.internal:5432/hookjar"
        );
        assert!(!format!("{pg:?}").contains("s3cret"));
        let plain = PgConfig::new("postgresql://hookjar@127.0.0.1/hookjar");
        assert_eq!(plain.redacted(), plain.url);
        assert!(matches!(
            StoreConfig::from_db_arg("postgresql://u@h/d"),
            StoreConfig::Postgres(_)
        ));
        assert_eq!(
            StoreConfig::from_db_arg("hooks.db"),
            StoreConfig::File("hooks.db".into())
        );
        assert_eq!(
            crate::store::describe(&StoreConfig::Postgres(pg)),
            "PostgreSQL postgres://hookjar:***@db.internal:5432/hookjar (shared: deliveries are claimed under 60 s leases)"
        );
    }
}
