//! The library's error types, one per layer (the HTTP edge has its own `ApiError` in
//! [`crate::api`]).

use std::path::PathBuf;

/// A store (SQLite or PostgreSQL) failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened or prepared.
    #[error(
        "cannot open the database {path}: {source}; check that its folder exists and is writable, or use --in-memory"
    )]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// The store file could not be created.
    #[error(
        "cannot create the database {path}: {source}; check that its folder exists and is writable, or use --in-memory"
    )]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The database was written by a newer hookjar.
    #[error(
        "the database has schema version {found}, newer than this hookjar understands ({supported}); upgrade hookjar or use another --db file"
    )]
    TooNew { found: i64, supported: i64 },
    /// A schema migration found the data in a state it cannot carry over; nothing
    /// of it was applied.
    #[error(
        "cannot bring the database to schema version {version}: {detail}; the database is left as it was (restore a backup, or use another --db file)"
    )]
    Migration { version: i64, detail: String },
    /// Any SQLite error.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored value that cannot be read back (a corrupted row).
    #[error("corrupt stored value in {table}.{column}: {detail}")]
    Corrupt {
        table: &'static str,
        column: &'static str,
        detail: String,
    },
    /// The blocking task running the query panicked or was cancelled.
    #[error("the store task failed: {0}")]
    Task(String),
    /// The PostgreSQL database could not be reached or prepared.
    #[error(
        "cannot connect to the PostgreSQL database {url}: {source}; check that the server runs, that the URL's user, host, port and database are right, and that the user may create tables"
    )]
    Connect {
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The PostgreSQL URL's TLS settings (`sslmode`, `sslrootcert`) cannot be used.
    #[error(transparent)]
    PgTls(#[from] crate::store::postgres::tls::PgTlsError),
    /// Any PostgreSQL error.
    #[error("database error: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// No pooled PostgreSQL connection could be had.
    #[error("cannot get a PostgreSQL connection from the pool: {0}")]
    Pool(String),
    /// The store configuration cannot be used this way.
    #[error("store configuration: {0}")]
    Config(String),
    /// Another live process owns this SQLite store (S19: one owner per store).
    #[error(
        "the store {path} is in use by another hookjar dispatcher ({owner}); stop that process first, or give this one another --db file"
    )]
    Owned { path: PathBuf, owner: String },
    /// The SQLite store file has more than one name (hard links): each name has its
    /// own owner lock, so none can tell whether another dispatcher uses the file.
    #[error(
        "the store {path} has {links} names (hard links), and hookjar cannot tell whether another dispatcher uses it under another one (two would send the same attempts twice); give it one name (delete the other links, or use a copy) and start again"
    )]
    Linked { path: PathBuf, links: u64 },
    /// The owner lock file could not be created or locked.
    #[error(
        "cannot lock the store {path} (lock file {lock}): {source}; check that its folder is writable"
    )]
    Lock {
        path: PathBuf,
        lock: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    /// When the store cannot take writes for a reason outside the dispatcher (a full
    /// disk, a read-only or failing file system, a busy database), the cause in
    /// words; the request may be retried once it is fixed. `None` for other errors.
    pub fn unavailable(&self) -> Option<&'static str> {
        use rusqlite::ErrorCode as C;
        match self {
            StoreError::Pool(_) => return Some("the PostgreSQL database cannot be reached"),
            StoreError::Postgres(e) if e.is_closed() || e.as_db_error().is_none() => {
                return Some("the PostgreSQL database cannot be reached");
            }
            StoreError::Postgres(e) => {
                let code = e.as_db_error().map(|d| d.code().code()).unwrap_or("");
                return match code.get(..2).unwrap_or("") {
                    "53" => Some(
                        "the PostgreSQL server is out of resources (disk full or too many connections)",
                    ),
                    "25" => Some("the PostgreSQL database is read-only"),
                    "57" | "08" => Some("the PostgreSQL database cannot be reached"),
                    _ => None,
                };
            }
            _ => {}
        }
        let StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) = self else {
            return None;
        };
        Some(match e.code {
            C::DiskFull => "the store's disk is full",
            C::ReadOnly => "the store is read-only",
            C::SystemIoFailure => "the store's disk cannot be read or written (I/O error)",
            C::DatabaseBusy | C::DatabaseLocked => "the store is busy",
            C::CannotOpen => "the store's file cannot be opened",
            _ => return None,
        })
    }
}

/// A failure to start the dispatcher.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The address could not be bound.
    #[error(
        "cannot listen on {addr}: {source}; is another process using that address? Choose another --addr"
    )]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// The listener's address could not be read.
    #[error("cannot read the listening address: {0}")]
    LocalAddr(#[source] std::io::Error),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The HTTP client could not be built (TLS setup).
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// The configuration is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
}
