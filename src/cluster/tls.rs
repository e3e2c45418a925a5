//! TLS to Redis (`rediss://`, issue 13): the trusted CA bundle of `--cluster-redis-ca` and the
//! `redis::Client` a [`super::Link`] connects with.
//!
//! Owns reading and checking the operator's CA file (PEM certificates, read once at start),
//! installing rustls's `ring` provider as the process default (once), and building the client:
//! a `rediss://` URL checks the server's certificate and name against the system roots, or
//! against the CA bundle alone when one is given. Never offers an "insecure" mode (no
//! unchecked certificates, no name check skipped), never falls back to plaintext, and never
//! prints what the CA file holds (errors and `Debug` name its path only).

use std::path::{Path, PathBuf};
use std::sync::Once;

use redis::{Client, ErrorKind, RedisError, TlsCertificates};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

/// The most bytes a CA bundle may hold (a bundle of every public root is about 250 KiB).
pub const MAX_CA_BYTES: u64 = 4 * 1024 * 1024;

/// A PEM bundle of CA certificates to trust for `rediss://` instead of the system roots
/// (`--cluster-redis-ca FILE`): read and checked by [`RedisCa::load`].
///
/// `Debug` shows the path and the number of certificates, never the content.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisCa {
    path: PathBuf,
    pem: Vec<u8>,
    certificates: usize,
}

impl RedisCa {
    /// Read `path`: a PEM file of one or more `CERTIFICATE` blocks, each a certificate rustls
    /// accepts as a trust anchor. Errors (unreadable, larger than [`MAX_CA_BYTES`], no
    /// certificate, a block that does not parse) name the path and say what is wrong, never
    /// quoting the file.
    pub fn load(path: &Path) -> Result<RedisCa, String> {
        let shown = path.display();
        let size = std::fs::metadata(path)
            .map_err(|e| format!("cannot read {shown}: {e}"))?
            .len();
        if size > MAX_CA_BYTES {
            return Err(format!(
                "{shown} holds {size} bytes, more than a CA bundle's {MAX_CA_BYTES}"
            ));
        }
        let pem = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
        let certificates = check_bundle(&pem).map_err(|what| format!("{shown}: {what}"))?;
        Ok(RedisCa {
            path: path.to_path_buf(),
            pem,
            certificates,
        })
    }

    /// The file the bundle was read from (what `--print-config` shows).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many certificates the bundle holds (at least 1).
    pub fn certificates(&self) -> usize {
        self.certificates
    }
}

impl std::fmt::Debug for RedisCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCa")
            .field("path", &self.path)
            .field("certificates", &self.certificates)
            .finish()
    }
}

/// The number of certificates in `pem`, each checked as a trust anchor; an error says what
/// is wrong without quoting the content.
fn check_bundle(pem: &[u8]) -> Result<usize, String> {
    let mut store = RootCertStore::empty();
    for (index, certificate) in CertificateDer::pem_slice_iter(pem).enumerate() {
        let certificate = certificate
            .map_err(|_| format!("PEM block {} is not a readable certificate", index + 1))?;
        store
            .add(certificate)
            .map_err(|e| format!("certificate {} cannot be a trust anchor ({e})", index + 1))?;
    }
    match store.len() {
        0 => Err("no PEM CERTIFICATE block (a CA bundle in PEM is expected)".to_owned()),
        n => Ok(n),
    }
}

/// Install rustls's `ring` provider as the process default, once (the redis crate builds its
/// rustls configurations with the default provider). A default already installed by someone
/// else is kept.
pub fn install_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Err means a default was installed first: it is used as it is.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The client for `url`: `redis://` as plain TCP, `rediss://` over TLS checked against `ca`
/// when given, else the system roots. A CA with a `redis://` URL is refused (it would mean
/// the operator wants TLS and gets plaintext), and so is a URL the redis crate cannot use.
pub fn client(url: &str, ca: Option<&RedisCa>) -> Result<Client, RedisError> {
    let tls = url.starts_with("rediss://");
    match ca {
        Some(_) if !tls => Err(RedisError::from((
            ErrorKind::InvalidClientConfig,
            "--cluster-redis-ca is set but --cluster-redis is a redis:// URL (plaintext)",
            "use rediss:// to connect over TLS".to_owned(),
        ))),
        Some(ca) => {
            install_provider();
            Client::build_with_tls(
                url,
                TlsCertificates {
                    client_tls: None,
                    root_cert: Some(ca.pem.clone()),
                },
            )
        }
        None => {
            if tls {
                install_provider();
            }
            Client::open(url)
        }
    }
}

/// `error` (a connection error's text) with what to do when it is a refused server
/// certificate: rustls says `invalid peer certificate: …` (`UnknownIssuer`, a name it is not
/// valid for, expired, …); other errors unchanged.
pub fn explain(error: String) -> String {
    if error.contains("invalid peer certificate") {
        format!(
            "{error} (TLS: the Redis server's certificate is not trusted: it must chain to the \
             system roots or to --cluster-redis-ca, and name the host of --cluster-redis)"
        )
    } else {
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, content: &[u8]) -> PathBuf {
        let path = std::env::temp_dir().join(format!("rr-ca-{}-{name}", std::process::id()));
        std::fs::write(&path, content).unwrap();
        path
    }

    #[test]
    fn a_bad_bundle_is_refused_naming_the_file_never_quoting_it() {
        let secretish = b"not-a-certificate-s3cret-content\n";
        let cases: [(&str, &[u8], &str); 3] = [
            ("empty", b"", "no PEM CERTIFICATE"),
            ("text", secretish, "no PEM CERTIFICATE"),
            (
                "garbage-block",
                b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
                "certificate 1 cannot be a trust anchor",
            ),
        ];
        for (name, content, says) in cases {
            let path = write(name, content);
            let err = RedisCa::load(&path).unwrap_err();
            assert!(err.contains(&path.display().to_string()), "{err}");
            assert!(err.contains(says), "{name}: {err}");
            assert!(!err.contains("s3cret"), "{err}");
            std::fs::remove_file(&path).unwrap();
        }
        let missing = std::env::temp_dir().join("rr-ca-does-not-exist.pem");
        let err = RedisCa::load(&missing).unwrap_err();
        assert!(
            err.contains("cannot read") && err.contains("rr-ca-does-not-exist"),
            "{err}"
        );
    }

    #[test]
    fn a_ca_with_a_plaintext_url_is_refused() {
        let ca = RedisCa {
            path: PathBuf::from("/etc/redis-ca.pem"),
            pem: Vec::new(),
            certificates: 1,
        };
        let err = client("redis://127.0.0.1:6379", Some(&ca)).unwrap_err();
        assert!(err.to_string().contains("rediss://"), "{err}");
        assert!(!format!("{ca:?}").contains("pem:"), "{ca:?}");
    }
}
