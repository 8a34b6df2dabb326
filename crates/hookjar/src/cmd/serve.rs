//! `hookjar serve`: run the reference dispatcher (issue #4).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use hookjar_dispatch::{Config, Dispatcher, StoreConfig};

use super::flags::{PolicyFlags, ServerFlags};
use super::util::{parse_duration, parse_timeout};

/// Run a local Skilljar-style webhook dispatcher (its flags; the long help is `AFTER_HELP`).
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// Address to listen on, HOST:PORT (e.g. 127.0.0.1:8750 or localhost:8750).
    #[arg(long, default_value = "127.0.0.1:8750", value_name = "HOST:PORT")]
    #[arg(value_parser = parse_listen_addr)]
    pub addr: String,
    /// API key clients must send as the Basic auth username (no ':'). When not
    /// given, one is generated, kept in the --db file for the next start, and printed.
    #[arg(long, env = "HOOKJAR_API_KEY", hide_env_values = true, value_parser = parse_api_key)]
    pub api_key: Option<String>,
    /// Where webhooks, events and pending retries are kept across restarts: a SQLite
    /// file (one process owns it), or a PostgreSQL URL such as
    /// postgres://USER@HOST:5432/DB (several processes may share it; TLS with
    /// ?sslmode=require or ?sslmode=verify-full&sslrootcert=CA.pem; see
    /// docs/deploy.md).
    #[arg(
        long,
        env = "HOOKJAR_DB",
        default_value = "hookjar.db",
        conflicts_with = "in_memory"
    )]
    pub db: String,
    /// With a PostgreSQL --db: how long a delivery claimed by a process that dies
    /// stays claimed before another process retries it.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub lease: Duration,
    /// Keep everything in memory instead (lost when the dispatcher stops).
    #[arg(long)]
    pub in_memory: bool,
    /// Make back-off waits pass faster: with 3600, an hour of back-off takes a second
    /// (at most 1000000). Pending retries keep their place across restarts and scale
    /// changes.
    #[arg(long, default_value_t = 1.0, value_parser = parse_serve_time_scale)]
    pub time_scale: f64,
    /// How long to wait for your endpoint to answer before counting a timeout.
    #[arg(long, default_value = "10s", value_parser = parse_timeout)]
    pub timeout: Duration,
    #[command(flatten)]
    pub policy: PolicyFlags,
    /// Show stored basic-auth passwords in API answers, as Skilljar does (hookjar
    /// masks them as "********" by default).
    #[arg(long)]
    pub reveal_secrets: bool,
    /// Deliver and ping only to loopback targets (127.0.0.0/8, ::1, localhost); any
    /// other target fails as a connection error without being contacted or looked up.
    /// For test runs that must not reach the network, such as fuzzing the API.
    #[arg(long)]
    pub loopback_only: bool,
    #[command(flatten)]
    pub server: ServerFlags,
}

/// Shown under the flags (the command's one-line summary lives in `main.rs`).
const AFTER_HELP: &str = "\
Serves the Skilljar Webhooks management API (/v1/webhooks, ping, samples) plus hookjar's
extensions (POST /v1/events to emit an event, GET /v1/webhooks/ID/deliveries, /openapi.json),
and delivers events the way Skilljar does: a 5xx is retried after 2 s, 4 s, 8 s, ... up to 1 h
between tries, 60 retries (about 50 hours); any 4xx, more than 10 redirects, or running out of
retries deactivates the webhook.

Authenticate with HTTP Basic, the API key as the username and an empty password:
  curl -u KEY: http://127.0.0.1:8750/v1/ping

Examples:
  hookjar serve --in-memory --api-key k                   # throw-away, real time
  hookjar serve --db hooks.db --time-scale 3600           # an hour of back-off per second

  hookjar serve --db postgres://hookjar@127.0.0.1:5432/hookjar   # shared; run several

Ctrl-C stops it: attempts in flight finish; pending retries stay in --db for the next start.
One process owns a --db file: a second `hookjar serve` on it exits at once, naming the owner.
Several processes may share one PostgreSQL --db (same --api-key and --time-scale): each claims
due deliveries under a lease; when one dies, another retries its deliveries once the lease ends.";

/// `--api-key`: S5/S6's rule (no ':', which would end the Basic username).
fn parse_api_key(s: &str) -> Result<String, String> {
    if s.is_empty() {
        // Empty means "not given" (a generated key), as before.
        return Ok(String::new());
    }
    hookjar_core::webhook::validate_api_key(s).map(|()| s.to_owned())
}

/// `--time-scale`: X3's rule (finite, above 0, at most 1000000).
fn parse_serve_time_scale(s: &str) -> Result<f64, String> {
    let n: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number; give a time scale such as 1, 60 or 3600"))?;
    hookjar_core::timeline::validate_time_scale(n).map_err(|e| e.to_string())
}

/// `--addr`: an IP:PORT to listen on.
fn parse_listen_addr(s: &str) -> Result<String, String> {
    hookjar_mock::config::parse_addr(s)
        .map(|a| a.to_string())
        .map_err(|e| e.0)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();

    let policy = args.policy.policy(2)?;
    // Without a key, the dispatcher uses the one kept in the store (generated on
    // the store's first start).
    let (api_key, generated) = match args.api_key.filter(|k| !k.is_empty()) {
        Some(k) => (k, false),
        None => (String::new(), true),
    };
    let store = if args.in_memory {
        StoreConfig::InMemory
    } else {
        match StoreConfig::from_db_arg(&args.db) {
            StoreConfig::Postgres(mut pg) => {
                anyhow::ensure!(
                    args.lease >= Duration::from_secs(1),
                    "--lease {:?} is too short: a live process would lose its deliveries to another; give at least 1s (the default is 60s)",
                    args.lease
                );
                pg.lease = args.lease;
                StoreConfig::Postgres(pg)
            }
            other => other,
        }
    };
    let config = Config {
        api_key: api_key.clone(),
        policy,
        timeout: args.timeout,
        time_scale: args.time_scale,
        reveal_secrets: args.reveal_secrets,
        store: store.clone(),
        limits: args.server.limits(),
        loopback_only: args.loopback_only,
        ..Config::default()
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let server = Dispatcher::start(config, &args.addr)
            .await
            .with_context(|| format!("cannot start the dispatcher on {}", args.addr))?;
        let api_key = server.api_key().to_owned();
        println!("hookjar dispatcher listening on {}", server.url());
        println!("  console: {}/ui (log in with the API key)", server.url());
        println!("  store: {}", hookjar_dispatch::store::describe(&store));
        if generated {
            let kept = if args.in_memory {
                "generated"
            } else {
                "generated once, kept in the store"
            };
            println!(
                "  API key ({kept}; pass --api-key or HOOKJAR_API_KEY to choose one): {api_key}"
            );
        }
        if args.time_scale != 1.0 {
            println!(
                "  time scale: one real second counts as {} s of back-off (the delivery log shows dispatcher time as `at`, wall time as `wall_at`)",
                args.time_scale
            );
        }
        println!(
            "  try: curl -u {}: {}/v1/ping",
            if generated {
                api_key.as_str()
            } else if std::env::var("HOOKJAR_API_KEY").as_deref() == Ok(api_key.as_str()) {
                "$HOOKJAR_API_KEY"
            } else {
                "YOUR_API_KEY"
            },
            server.url()
        );
        println!("Press Ctrl-C to stop.");
        wait_for_signal().await;
        eprintln!("stopping: finishing attempts in flight…");
        server.shutdown().await;
        eprintln!("stopped.");
        Ok(ExitCode::SUCCESS)
    })
}

/// Ctrl-C, or SIGTERM on Unix.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
