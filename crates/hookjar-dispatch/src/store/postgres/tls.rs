//! TLS to PostgreSQL (rustls, through `tokio-postgres-rustls`), chosen by the URL's
//! `sslmode` as libpq names it:
//!
//! | `sslmode`      | encrypted                       | server certificate verified |
//! |----------------|---------------------------------|-----------------------------|
//! | `disable`      | no                              | —                           |
//! | `prefer` (default) | if the server offers TLS    | no                          |
//! | `require`      | yes, or the connection fails    | no                          |
//! | `verify-full`  | yes, or the connection fails    | yes: chain and host name    |
//!
//! `verify-full` checks the chain against the Mozilla roots bundled by
//! `webpki-roots` (also `sslrootcert=system`), or against the PEM certificates of
//! `sslrootcert=FILE`, and checks that the certificate names the URL's host (a DNS
//! name or an IP address). `sslrootcert` is refused with another mode, so a root
//! file never looks like verification when nothing is verified. libpq's `allow` and
//! `verify-ca` are refused too. A Unix socket (`host=/dir`) never uses TLS: the
//! server refuses it there, which `prefer` accepts and `require` does not.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

/// The values of `sslmode` hookjar accepts.
pub const SSL_MODES: &str = "disable, prefer, require, verify-full";

/// What a URL's `sslmode` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, else plain; the certificate is not verified.
    Prefer,
    /// TLS or fail; the certificate is not verified.
    Require,
    /// TLS or fail; the chain is verified against the roots and the certificate
    /// must name the host.
    VerifyFull,
}

/// Why the TLS settings of a PostgreSQL URL cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PgTlsError {
    #[error(
        "the PostgreSQL URL has sslmode={value}, which hookjar does not know; use one of {SSL_MODES} (libpq's allow and verify-ca are not supported: use prefer or verify-full)"
    )]
    BadSslMode { value: String },
    #[error(
        "the PostgreSQL URL gives sslrootcert with sslmode={mode}, which does not verify the server certificate; use sslmode=verify-full to verify it against that root, or drop sslrootcert"
    )]
    RootWithoutVerify { mode: String },
    #[error(
        "cannot read the PostgreSQL root certificate sslrootcert={path}: {detail}; give a readable PEM file with the certificate of the CA that signed the server's certificate (or the server's self-signed certificate)"
    )]
    RootCert { path: PathBuf, detail: String },
    #[error(
        "the PostgreSQL server {url} presented a TLS certificate that sslmode=verify-full does not accept: {detail}; give the certificate of the CA that signed it with sslrootcert=FILE and check that it names the URL's host, or use sslmode=require to encrypt without verifying"
    )]
    Unverified { url: String, detail: String },
    #[error(
        "the TLS handshake with the PostgreSQL server {url} failed (sslmode={mode}): {detail}; check that the server has ssl = on, or use sslmode=prefer or disable"
    )]
    Handshake {
        url: String,
        mode: &'static str,
        detail: String,
    },
    #[error("cannot set up TLS for PostgreSQL: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The TLS half of a PostgreSQL URL: its `sslmode` and `sslrootcert`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: SslMode,
    /// `sslrootcert=FILE`; `None` for the bundled roots.
    pub root: Option<PathBuf>,
}

/// Takes `sslmode` and `sslrootcert` out of `url` (tokio-postgres knows neither
/// `verify-full` nor `sslrootcert`) and returns the rest of the URL, untouched,
/// with the settings.
pub fn split_url(url: &str) -> Result<(String, TlsSettings), PgTlsError> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, query),
        None => (url, ""),
    };
    let mut mode = None;
    let mut root = None;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = || percent_encoding::percent_decode_str(value).decode_utf8_lossy();
        match key {
            "sslmode" => mode = Some(value().into_owned()),
            "sslrootcert" => root = Some(value().into_owned()),
            _ => rest.push(pair),
        }
    }
    let mode_name = mode.unwrap_or_else(|| "prefer".to_owned());
    let mode = match mode_name.as_str() {
        "disable" => SslMode::Disable,
        "prefer" => SslMode::Prefer,
        "require" => SslMode::Require,
        "verify-full" => SslMode::VerifyFull,
        _ => return Err(PgTlsError::BadSslMode { value: mode_name }),
    };
    let root = match root.as_deref() {
        None => None,
        Some(_) if mode != SslMode::VerifyFull => {
            return Err(PgTlsError::RootWithoutVerify { mode: mode_name });
        }
        Some("system") => None,
        Some(path) => Some(PathBuf::from(path)),
    };
    let url = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((url, TlsSettings { mode, root }))
}

impl SslMode {
    /// The `sslmode` value.
    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// The rustls error somewhere in `error`'s chain (tokio-rustls wraps it in an
/// `io::Error`, whose `source` skips it), as a typed error naming `url`: `None`
/// when the failure was not TLS.
pub fn handshake_error(
    error: &(dyn std::error::Error + 'static),
    url: &str,
    mode: SslMode,
) -> Option<PgTlsError> {
    let mut next = Some(error);
    while let Some(e) = next {
        let found = e.downcast_ref::<rustls::Error>().or_else(|| {
            e.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(tls) = found {
            let detail = tls.to_string();
            return Some(match (mode, tls) {
                (SslMode::VerifyFull, rustls::Error::InvalidCertificate(_)) => {
                    PgTlsError::Unverified {
                        url: url.to_owned(),
                        detail,
                    }
                }
                _ => PgTlsError::Handshake {
                    url: url.to_owned(),
                    mode: mode.name(),
                    detail,
                },
            });
        }
        next = e.source();
    }
    None
}

/// `error` and its sources, `: `-separated, repeats left out.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        next = e.source();
    }
    text
}

impl TlsSettings {
    /// tokio-postgres' mode: `verify-full` is `require` plus a verifying connector.
    pub fn driver_mode(&self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as D;
        match self.mode {
            SslMode::Disable => D::Disable,
            SslMode::Prefer => D::Prefer,
            SslMode::Require | SslMode::VerifyFull => D::Require,
        }
    }

    /// The rustls connector for these settings (reads `sslrootcert`).
    pub fn connector(&self) -> Result<MakeRustlsConnect, PgTlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let config = match self.mode {
            SslMode::VerifyFull => {
                let roots = match &self.root {
                    None => RootCertStore {
                        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                    },
                    Some(path) => read_roots(path)?,
                };
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            SslMode::Disable | SslMode::Prefer | SslMode::Require => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Unverified(provider)))
                .with_no_client_auth(),
        };
        Ok(MakeRustlsConnect::new(config))
    }
}

fn read_roots(path: &std::path::Path) -> Result<RootCertStore, PgTlsError> {
    let failed = |detail: String| PgTlsError::RootCert {
        path: path.to_owned(),
        detail,
    };
    let pem = std::fs::read(path).map_err(|e| failed(e.to_string()))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| failed(format!("not PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| failed(format!("not a usable certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(failed("no CERTIFICATE block in the file".to_owned()));
    }
    Ok(roots)
}

/// `prefer` and `require`: the connection is encrypted, the server's certificate
/// is not checked (as libpq does without a root file). The handshake signatures
/// are still verified, so the session key belongs to whoever holds the
/// certificate's key.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_and_sslrootcert_are_taken_out_of_the_url() {
        let (url, s) = split_url(
            "postgres://u@h:5/db?sslmode=verify-full&application_name=x&sslrootcert=%2Ftmp%2Fca.pem",
        )
        .unwrap();
        assert_eq!(url, "postgres://u@h:5/db?application_name=x");
        assert_eq!(s.mode, SslMode::VerifyFull);
        assert_eq!(s.root, Some(PathBuf::from("/tmp/ca.pem")));

        let (url, s) = split_url("postgres://u@h:5/db").unwrap();
        assert_eq!(url, "postgres://u@h:5/db");
        assert_eq!(s.mode, SslMode::Prefer);
        assert_eq!(s.root, None);

        let (url, s) = split_url("postgres://u@h:5/db?sslmode=disable").unwrap();
        assert_eq!(url, "postgres://u@h:5/db");
        assert_eq!(s.mode, SslMode::Disable);

        let (_, s) =
            split_url("postgres://u@h:5/db?sslmode=verify-full&sslrootcert=system").unwrap();
        assert_eq!(s.root, None);
    }

    #[test]
    fn a_bad_sslmode_is_named() {
        for bad in ["bogus", "verify-ca", "allow", ""] {
            let e = split_url(&format!("postgres://u@h/db?sslmode={bad}"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("sslmode={bad},")), "{e}");
            assert!(e.contains(SSL_MODES), "{e}");
        }
    }

    #[test]
    fn a_root_without_verification_is_refused() {
        let e = split_url("postgres://u@h/db?sslmode=require&sslrootcert=/ca.pem")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sslmode=require") && e.contains("verify-full"),
            "{e}"
        );
    }

    #[test]
    fn an_unreadable_root_is_named() {
        let settings = TlsSettings {
            mode: SslMode::VerifyFull,
            root: Some(PathBuf::from("/nonexistent/hookjar-ca.pem")),
        };
        let e = settings.connector().err().unwrap().to_string();
        assert!(e.contains("sslrootcert=/nonexistent/hookjar-ca.pem"), "{e}");
        let dir = std::env::temp_dir().join(format!("hookjar-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let settings = TlsSettings {
            mode: SslMode::VerifyFull,
            root: Some(empty.clone()),
        };
        let e = settings.connector().err().unwrap().to_string();
        assert!(e.contains("no CERTIFICATE block"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
