//! TLS certificates of the gateway, shared by HTTPS on the S3 port and FTPS.
//!
//! A [`CertStore`] loads a PEM certificate chain and its private key and serves them to
//! rustls as a [`ResolvesServerCert`], so every new handshake asks the store for the
//! current pair. [`CertStore::reload`] (on SIGHUP) and [`CertStore::reload_if_changed`]
//! (polled: the files' modification time or size changed) swap in a new pair without a
//! restart; connections already open keep the certificate they started with.
//!
//! A reload that fails (unreadable file, no key, a key that does not match the
//! certificate, e.g. because only one of the two files has been replaced so far) keeps
//! the previous pair, and the poll tries again on its next round. Only the first load
//! must succeed.
//!
//! The front-ends build their own [`rustls::ServerConfig`] (protocol versions, ALPN and
//! session resumption differ between HTTP and FTP) around [`CertStore`] as the resolver;
//! [`provider`] is the one crypto provider they use.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Why a certificate pair could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The file is not PEM or holds none of what was expected.
    #[error("{path}: {what}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// rustls refused the pair (unsupported key type, key not matching the certificate).
    #[error("{cert} with {key}: {source}")]
    Pair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls' reason.
        source: rustls::Error,
    },
    /// rustls refused the server configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The crypto provider every TLS server of the gateway uses (ring: no cmake on the build
/// hosts).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// What identifies one version of the files on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    cert: (Option<SystemTime>, u64),
    key: (Option<SystemTime>, u64),
}

fn file_stamp(path: &Path) -> (Option<SystemTime>, u64) {
    match fs::metadata(path) {
        Ok(m) => (m.modified().ok(), m.len()),
        Err(_) => (None, 0),
    }
}

/// A certificate chain and key loaded from two PEM files, reloadable in place.
#[derive(Debug)]
pub struct CertStore {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' stamp when `current` was loaded, and the last stamp that failed.
    stamps: Mutex<(Stamp, Option<Stamp>)>,
}

impl CertStore {
    /// Loads the pair; fails if it cannot be used.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Arc<Self>, TlsError> {
        let stamp = Self::stamp_of(cert_path, key_path);
        let pair = load_pair(cert_path, key_path)?;
        Ok(Arc::new(Self {
            cert_path: cert_path.to_path_buf(),
            key_path: key_path.to_path_buf(),
            current: RwLock::new(Arc::new(pair)),
            stamps: Mutex::new((stamp, None)),
        }))
    }

    fn stamp_of(cert: &Path, key: &Path) -> Stamp {
        Stamp {
            cert: file_stamp(cert),
            key: file_stamp(key),
        }
    }

    /// Loads the files again and serves them to new handshakes; on error the previous
    /// pair stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let stamp = Self::stamp_of(&self.cert_path, &self.key_path);
        let result = load_pair(&self.cert_path, &self.key_path);
        let mut stamps = self.stamps.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(pair) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(pair);
                *stamps = (stamp, None);
                tracing::info!(cert = %self.cert_path.display(), "TLS certificate loaded");
                Ok(())
            }
            Err(e) => {
                stamps.1 = Some(stamp);
                Err(e)
            }
        }
    }

    /// Reloads if either file changed (modification time or size) since the last load.
    /// `Ok(true)`: a new pair is served. A change that failed to load is reported once and
    /// retried when the files change again.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let now = Self::stamp_of(&self.cert_path, &self.key_path);
        {
            let stamps = self.stamps.lock().unwrap_or_else(|e| e.into_inner());
            if now == stamps.0 || Some(now) == stamps.1 {
                return Ok(false);
            }
        }
        self.reload().map(|()| true)
    }

    /// The pair new handshakes get.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The certificate file.
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

fn pem_error(path: &Path, what: impl Into<String>) -> TlsError {
    TlsError::Pem {
        path: path.to_path_buf(),
        what: what.into(),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a PEM chain and key and checks that they belong together.
fn load_pair(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, TlsError> {
    let cert_pem = read(cert_path)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(cert_path, e.to_string()))?;
    if chain.is_empty() {
        return Err(pem_error(cert_path, "no CERTIFICATE block"));
    }
    let key_pem = read(key_path)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| pem_error(key_path, format!("no usable private key ({e})")))?;
    CertifiedKey::from_der(chain, key, &provider()).map_err(|source| TlsError::Pair {
        cert: cert_path.to_path_buf(),
        key: key_path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT_A: &str = include_str!("../testdata/a.crt");
    const KEY_A: &str = include_str!("../testdata/a.key");
    const CERT_B: &str = include_str!("../testdata/b.crt");
    const KEY_B: &str = include_str!("../testdata/b.key");

    fn leaf(store: &CertStore) -> Vec<u8> {
        store.current().cert[0].to_vec()
    }

    fn der(pem: &str) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec()
    }

    #[test]
    fn loads_and_reloads_when_the_files_change() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        fs::write(&c, CERT_A).unwrap();
        fs::write(&k, KEY_A).unwrap();
        let store = CertStore::load(&c, &k).unwrap();
        assert_eq!(leaf(&store), der(CERT_A));
        assert!(!store.reload_if_changed().unwrap(), "nothing changed yet");

        // Half-replaced (new key, old certificate): refused, the old pair stays.
        fs::write(&k, KEY_B).unwrap();
        assert!(matches!(
            store.reload_if_changed(),
            Err(TlsError::Pair { .. })
        ));
        assert_eq!(leaf(&store), der(CERT_A));
        // The same failing files are not retried on every poll.
        assert!(!store.reload_if_changed().unwrap());

        fs::write(&c, CERT_B).unwrap();
        assert!(store.reload_if_changed().unwrap());
        assert_eq!(leaf(&store), der(CERT_B));
    }

    #[test]
    fn bad_files_fail_with_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let e = CertStore::load(&c, &k).unwrap_err();
        assert!(e.to_string().contains("tls.crt"), "{e}");
        fs::write(&c, "not pem").unwrap();
        fs::write(&k, KEY_A).unwrap();
        let e = CertStore::load(&c, &k).unwrap_err();
        assert!(matches!(e, TlsError::Pem { .. }), "{e}");
        fs::write(&c, CERT_A).unwrap();
        fs::write(&k, CERT_A).unwrap();
        let e = CertStore::load(&c, &k).unwrap_err();
        assert!(e.to_string().contains("tls.key"), "{e}");
    }

    #[test]
    fn explicit_reload_keeps_the_old_pair_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        fs::write(&c, CERT_A).unwrap();
        fs::write(&k, KEY_A).unwrap();
        let store = CertStore::load(&c, &k).unwrap();
        fs::remove_file(&c).unwrap();
        assert!(matches!(store.reload(), Err(TlsError::Read { .. })));
        assert_eq!(leaf(&store), der(CERT_A));
        fs::write(&c, CERT_A).unwrap();
        store.reload().unwrap();
        assert_eq!(leaf(&store), der(CERT_A));
    }
}
