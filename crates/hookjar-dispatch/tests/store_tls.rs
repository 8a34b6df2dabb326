//! TLS to PostgreSQL, chosen by the URL's `sslmode`, against a throw-away cluster
//! with `ssl = on` and a certificate made here by a test CA (rcgen). Skipped with
//! one line when PostgreSQL is not installed, a failure under
//! `HOOKJAR_REQUIRE_POSTGRES=1`.

use std::path::{Path, PathBuf};
use std::str::FromStr as _;

use hookjar_core::NewWebhook;
use hookjar_dispatch::pgtemp::{ServerTls, TempCluster};
use hookjar_dispatch::store::postgres::tls;
use hookjar_dispatch::store::{PgConfig, Store, StoreConfig};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// A test CA: its PEM certificate and what it signs with.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    Ca {
        pem,
        issuer: Issuer::new(params, key),
    }
}

/// A server certificate for 127.0.0.1 and localhost, signed by `ca`.
fn server_tls(ca: &Ca) -> ServerTls {
    server_tls_for(ca, &["127.0.0.1", "localhost"])
}

/// A server certificate for `names`, signed by `ca`.
fn server_tls_for(ca: &Ca, names: &[&str]) -> ServerTls {
    let mut params =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "hookjar test server");
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    ServerTls {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// A temp directory for root files, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new() -> Dir {
        let dir = std::env::temp_dir().join(format!(
            "hookjar-tls-test-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn with(url: &str, params: &str) -> String {
    format!("{url}?{params}")
}

fn root_param(path: &Path) -> String {
    format!("sslrootcert={}", path.display())
}

async fn connect(url: &str) -> Result<Store, hookjar_dispatch::error::StoreError> {
    Store::connect(&StoreConfig::Postgres(PgConfig::new(url))).await
}

/// A direct connection made the way the store makes its own (same URL handling
/// and connector), asking the server whether this session is encrypted.
async fn session_is_ssl(url: &str) -> bool {
    let (rest, settings) = tls::split_url(url).unwrap();
    let mut config = tokio_postgres::Config::from_str(&rest).unwrap();
    config.ssl_mode(settings.driver_mode());
    let (client, conn) = config.connect(settings.connector().unwrap()).await.unwrap();
    let driver = tokio::spawn(conn);
    let ssl: bool = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    drop(client);
    let _ = driver.await;
    ssl
}

/// Every session the server has open on database `db` (the store's pool and its
/// `LISTEN` connection), asked over a plain connection of our own: how many, and
/// whether all are encrypted.
async fn sessions_of(admin_url: &str, db: &str) -> (i64, bool) {
    let (client, conn) =
        tokio_postgres::connect(&with(admin_url, "sslmode=disable"), tokio_postgres::NoTls)
            .await
            .unwrap();
    let driver = tokio::spawn(conn);
    let row = client
        .query_one(
            "SELECT count(*), coalesce(bool_and(s.ssl), false)
             FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
             WHERE a.datname = $1 AND a.pid <> pg_backend_pid()",
            &[&db],
        )
        .await
        .unwrap();
    drop(client);
    let _ = driver.await;
    (row.get(0), row.get(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_tls_by_sslmode() {
    let ca_good = ca("hookjar test CA");
    let server = server_tls(&ca_good);
    let Some(cluster) = TempCluster::start_or_skip_tls("postgres_over_tls_by_sslmode", &server)
    else {
        return;
    };
    let dir = Dir::new();
    let good_root = dir.file("ca.pem", &ca_good.pem);
    let other_root = dir.file("other-ca.pem", &ca("another CA").pem);

    // (1) verify-full against the CA that signed the server's certificate: the
    // store works and its sessions are encrypted.
    let url = cluster.database().unwrap();
    let db = url.rsplit('/').next().unwrap().to_owned();
    let verified = with(
        &url,
        &format!("sslmode=verify-full&{}", root_param(&good_root)),
    );
    let store = connect(&verified).await.unwrap();
    store.subscribe(std::sync::Arc::new(tokio::sync::Notify::new()));
    let made = store
        .create_webhook(NewWebhook::to("http://127.0.0.1:9/tls"), 1_000_000)
        .await
        .unwrap();
    let read = store.get_webhook(made.id.clone()).await.unwrap().unwrap();
    assert_eq!(read.id, made.id);
    assert_eq!(read.target_url, made.target_url);
    assert!(session_is_ssl(&verified).await);
    let (sessions, all_ssl) = sessions_of(&cluster.url(), &db).await;
    assert!(sessions >= 1, "the store has no session on {db}");
    assert!(all_ssl, "a session of the store on {db} is not encrypted");
    drop(store);

    // (2) verify-full against a root that did not sign it: refused, and the
    // message says the certificate is the trouble.
    let wrong = with(
        &url,
        &format!("sslmode=verify-full&{}", root_param(&other_root)),
    );
    let e = connect(&wrong).await.unwrap_err().to_string();
    assert!(e.contains("certificate"), "{e}");
    assert!(e.contains("UnknownIssuer"), "{e}");
    assert!(e.contains("sslrootcert=FILE"), "{e}");
    // The bundled roots do not know the test CA either.
    let e = connect(&with(&url, "sslmode=verify-full"))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("UnknownIssuer"), "{e}");

    // (3) require: encrypted, certificate not verified.
    let required = with(&url, "sslmode=require");
    let store = connect(&required).await.unwrap();
    assert!(store.get_webhook(made.id.clone()).await.unwrap().is_some());
    assert!(session_is_ssl(&required).await);
    drop(store);

    // prefer (also no sslmode) takes TLS when offered; disable stays plain.
    assert!(session_is_ssl(&with(&url, "sslmode=prefer")).await);
    assert!(session_is_ssl(&url).await);
    assert!(!session_is_ssl(&with(&url, "sslmode=disable")).await);

    // (4) an unknown sslmode is refused, by name, before any connection.
    let e = connect(&with(&url, "sslmode=bogus"))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("sslmode=bogus"), "{e}");
    assert!(e.contains(tls::SSL_MODES), "{e}");

    // An unreadable root file is named.
    let missing = dir.0.join("missing.pem");
    let e = connect(&with(
        &url,
        &format!("sslmode=verify-full&{}", root_param(&missing)),
    ))
    .await
    .unwrap_err()
    .to_string();
    assert!(
        e.contains(&format!("sslrootcert={}", missing.display())),
        "{e}"
    );
}

/// `require` on a server without TLS fails rather than going plain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_require_refuses_a_server_without_tls() {
    let Some(cluster) = TempCluster::start_or_skip("postgres_require_refuses_a_server_without_tls")
    else {
        return;
    };
    let url = cluster.database().unwrap();
    let e = connect(&with(&url, "sslmode=require"))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("server does not support TLS"), "{e}");
    // prefer falls back to plain there.
    let store = connect(&with(&url, "sslmode=prefer")).await.unwrap();
    assert!(store.list_webhooks(0, 1).await.is_ok());
}

/// verify-full checks the host name too: a certificate from the right CA that
/// does not name the URL's host (127.0.0.1) is refused; `require` still connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_verify_full_checks_the_host_name() {
    let ca_good = ca("hookjar test CA");
    let server = server_tls_for(&ca_good, &["db.invalid"]);
    let Some(cluster) =
        TempCluster::start_or_skip_tls("postgres_verify_full_checks_the_host_name", &server)
    else {
        return;
    };
    let dir = Dir::new();
    let root = dir.file("ca.pem", &ca_good.pem);
    let url = cluster.database().unwrap();
    let e = connect(&with(
        &url,
        &format!("sslmode=verify-full&{}", root_param(&root)),
    ))
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("not valid for name \"127.0.0.1\""), "{e}");
    assert!(e.contains("names the URL's host"), "{e}");
    assert!(session_is_ssl(&with(&url, "sslmode=require")).await);
}
