//! A throw-away PostgreSQL cluster for tests and load runs: `initdb` into a temp
//! directory, a server on a free loopback port (its socket in the same directory),
//! stopped and deleted on drop.
//!
//! Binaries come from the newest `/usr/lib/postgresql/*/bin`, else `PATH`. As root
//! (`initdb` refuses to run as root) the cluster is made and run by the `postgres`
//! user, or `nobody`, through `runuser`.
//!
//! [`TempCluster::start_or_skip`] is what tests call: with no PostgreSQL on the
//! machine it prints one `skipped: …` line and returns `None`, unless
//! `HOOKJAR_REQUIRE_POSTGRES=1`, when it panics.
//!
//! [`TempCluster::start_tls`] / [`TempCluster::start_or_skip_tls`] start it with
//! `ssl = on` and a server certificate the test made (its key file owned by the
//! cluster's user, mode 0600, as PostgreSQL requires).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A running throw-away cluster; stopped (immediately) and deleted on drop.
#[derive(Debug)]
pub struct TempCluster {
    dir: PathBuf,
    bin: PathBuf,
    run_as: Option<String>,
    port: u16,
}

static DATABASES: AtomicUsize = AtomicUsize::new(0);

impl TempCluster {
    /// Starts a cluster, or says why not: `Err(Missing)` when no PostgreSQL binaries
    /// are installed, `Err(Failed)` when they are and the cluster did not start.
    /// `durable: false` turns `fsync` off (fast tests); load runs keep it on.
    pub fn start(durable: bool) -> Result<TempCluster, PgTempError> {
        TempCluster::launch(durable, None)
    }

    /// [`TempCluster::start`] with `ssl = on` and `tls` as the server's certificate
    /// and key: clients may connect over TLS (loopback TCP; the socket stays plain).
    pub fn start_tls(durable: bool, tls: &ServerTls) -> Result<TempCluster, PgTempError> {
        TempCluster::launch(durable, Some(tls))
    }

    fn launch(durable: bool, tls: Option<&ServerTls>) -> Result<TempCluster, PgTempError> {
        let bin = find_bin().ok_or(PgTempError::Missing)?;
        let run_as = if is_root() {
            Some(
                ["postgres", "nobody"]
                    .into_iter()
                    .find(|u| uid_of(u).is_some())
                    .ok_or_else(|| {
                        PgTempError::Failed(
                            "running as root, and neither a `postgres` nor a `nobody` user exists to run initdb as".into(),
                        )
                    })?
                    .to_owned(),
            )
        } else {
            None
        };
        let dir = std::env::temp_dir().join(format!(
            "hookjar-pg-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| PgTempError::Failed(e.to_string()))?;
        let mut cluster = TempCluster {
            dir,
            bin,
            run_as,
            port: 0,
        };
        if let Some(user) = &cluster.run_as {
            let (uid, gid) = uid_of(user).expect("checked above");
            std::os::unix::fs::chown(&cluster.dir, Some(uid), Some(gid)).map_err(|e| {
                PgTempError::Failed(format!("chown {}: {e}", cluster.dir.display()))
            })?;
        }
        let data = cluster.dir.join("data");
        cluster.run(
            "initdb",
            &[
                "-D",
                path_str(&data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        )?;
        cluster.port = free_port().map_err(|e| PgTempError::Failed(e.to_string()))?;
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300{}",
            cluster.port,
            path_str(&cluster.dir),
            if durable {
                ""
            } else {
                " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            }
        );
        if let Some(tls) = tls {
            let cert = cluster.dir.join("server.crt");
            let key = cluster.dir.join("server.key");
            cluster.write_private(&cert, &tls.cert_pem)?;
            cluster.write_private(&key, &tls.key_pem)?;
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                path_str(&cert),
                path_str(&key)
            ));
        }
        let log = cluster.dir.join("log");
        cluster.run(
            "pg_ctl",
            &[
                "-D",
                path_str(&data),
                "-l",
                path_str(&log),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        )?;
        Ok(cluster)
    }

    /// [`TempCluster::start`] for a test: `None` when PostgreSQL is not installed and
    /// `HOOKJAR_REQUIRE_POSTGRES` is not `1` (one `skipped: …` line on stderr per
    /// test binary).
    ///
    /// # Panics
    /// When PostgreSQL is required but missing, or installed but not starting.
    pub fn start_or_skip(test: &str) -> Option<TempCluster> {
        TempCluster::or_skip(test, TempCluster::start(false))
    }

    /// [`TempCluster::start_tls`] for a test, skipped as [`TempCluster::start_or_skip`].
    ///
    /// # Panics
    /// When PostgreSQL is required but missing, or installed but not starting.
    pub fn start_or_skip_tls(test: &str, tls: &ServerTls) -> Option<TempCluster> {
        TempCluster::or_skip(test, TempCluster::start_tls(false, tls))
    }

    fn or_skip(test: &str, started: Result<TempCluster, PgTempError>) -> Option<TempCluster> {
        match started {
            Ok(c) => Some(c),
            Err(PgTempError::Missing) if !required() => {
                // Once per test binary, straight to stderr (the test harness
                // captures `eprintln!` of passing tests).
                static SAID: std::sync::Once = std::sync::Once::new();
                SAID.call_once(|| {
                    use std::io::Write as _;
                    let _ = writeln!(
                        std::io::stderr(),
                        "skipped: the PostgreSQL tests of this test binary ({test}, …): PostgreSQL is not installed (no initdb in /usr/lib/postgresql/*/bin or PATH); install Debian's `postgresql` to run them, or set HOOKJAR_REQUIRE_POSTGRES=1 to make this a failure"
                    );
                });
                None
            }
            Err(e) => panic!("{test}: {e}"),
        }
    }

    /// The port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of the `postgres` database.
    pub fn url(&self) -> String {
        self.url_of("postgres")
    }

    /// The URL of database `name` on this cluster.
    pub fn url_of(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates a fresh, empty database and returns its URL.
    pub fn database(&self) -> Result<String, PgTempError> {
        let name = format!(
            "hookjar_{}_{}",
            std::process::id(),
            DATABASES.fetch_add(1, Ordering::Relaxed)
        );
        let port = self.port.to_string();
        self.run(
            "createdb",
            &["-h", "127.0.0.1", "-p", &port, "-U", "postgres", &name],
        )?;
        Ok(self.url_of(&name))
    }

    /// Writes `text` to `path` (mode 0600), owned by the user the server runs as.
    fn write_private(&self, path: &Path, text: &str) -> Result<(), PgTempError> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let failed = |e: std::io::Error| PgTempError::Failed(format!("{}: {e}", path.display()));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(failed)?;
        file.write_all(text.as_bytes()).map_err(failed)?;
        if let Some(user) = &self.run_as {
            let (uid, gid) =
                uid_of(user).ok_or_else(|| PgTempError::Failed(format!("no user {user}")))?;
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(failed)?;
        }
        Ok(())
    }

    fn run(&self, tool: &str, args: &[&str]) -> Result<(), PgTempError> {
        let exe = self.bin.join(tool);
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let out = cmd
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| PgTempError::Failed(format!("cannot run {}: {e}", exe.display())))?;
        if out.status.success() {
            Ok(())
        } else {
            let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
            Err(PgTempError::Failed(format!(
                "{tool} failed ({}): {}{}\n{log}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )))
        }
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        if self.port != 0 {
            let data = self.dir.join("data");
            let _ = self.run(
                "pg_ctl",
                &["-D", path_str(&data), "-m", "immediate", "-w", "stop"],
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The PEM certificate (chain) and private key a TLS cluster presents.
#[derive(Clone)]
pub struct ServerTls {
    /// `-----BEGIN CERTIFICATE-----…`, the server's certificate first.
    pub cert_pem: String,
    /// `-----BEGIN PRIVATE KEY-----…`.
    pub key_pem: String,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

/// Why a throw-away cluster did not start.
#[derive(Debug, thiserror::Error)]
pub enum PgTempError {
    #[error(
        "PostgreSQL is not installed (no initdb in /usr/lib/postgresql/*/bin or PATH); install Debian's `postgresql` package"
    )]
    Missing,
    #[error("cannot start a throw-away PostgreSQL cluster: {0}")]
    Failed(String),
}

/// `HOOKJAR_REQUIRE_POSTGRES=1`: a missing PostgreSQL fails the tests.
pub fn required() -> bool {
    std::env::var("HOOKJAR_REQUIRE_POSTGRES").as_deref() == Ok("1")
}

fn find_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").is_file() && b.join("pg_ctl").is_file())
        .collect();
    // Newest major version first (numeric order: 9 < 15).
    dirs.sort_by_key(|b| {
        b.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    if let Some(b) = dirs.pop() {
        return Some(b);
    }
    // On PATH, follow a symlinked initdb to the directory it lives in (some systems
    // link only a few of the tools into a PATH directory).
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .filter_map(|d| d.join("initdb").canonicalize().ok())
            .filter_map(|initdb| initdb.parent().map(Path::to_path_buf))
            .find(|d| {
                ["initdb", "pg_ctl", "createdb"]
                    .iter()
                    .all(|t| d.join(t).is_file())
            })
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .is_some_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn uid_of(user: &str) -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let o = Command::new("id").args([flag, user]).output().ok()?;
        if !o.status.success() {
            return None;
        }
        String::from_utf8_lossy(&o.stdout).trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}
