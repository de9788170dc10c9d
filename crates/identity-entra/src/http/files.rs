//! The trust files of [`ReqwestClient`](super::ReqwestClient): PEM certificates from
//! `SSL_CERT_FILE` and `SSL_CERT_DIR` (and the token proxy's CA), read through the bounded,
//! checked reader, and the stamp that tells a replaced file from the one loaded.

use std::path::{Path, PathBuf};

use identity_core::Error;
use identity_core::fs::ReadOptions;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::NAME;

pub(super) fn add_root(
    roots: &mut rustls::RootCertStore,
    cert: CertificateDer<'static>,
    from: &str,
) -> Result<(), Error> {
    roots.add(cert).map_err(|e| {
        Error::invalid_configuration(
            NAME,
            format!("a certificate from {from} is not a valid CA certificate"),
        )
        .with_source(e)
    })
}

pub(crate) fn parse_pem_certs(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect()
}

/// What tells a replaced file from the one loaded: modification time, length, and (Unix)
/// device and inode, taken through links (Kubernetes swaps a `..data` link when it rotates a
/// projected file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileStamp {
    modified: Option<std::time::SystemTime>,
    len: u64,
    file_id: (u64, u64),
}

impl FileStamp {
    /// The stamp of the file at `path` now, or `None` when it cannot be read (missing while
    /// being replaced, for instance).
    pub(crate) fn of(path: &Path) -> Option<Self> {
        let meta = std::fs::metadata(path).ok()?;
        #[cfg(unix)]
        let file_id = {
            use std::os::unix::fs::MetadataExt;
            (meta.dev(), meta.ino())
        };
        #[cfg(not(unix))]
        let file_id = (0, 0);
        Some(Self {
            modified: meta.modified().ok(),
            len: meta.len(),
            file_id,
        })
    }
}

/// The largest CA bundle file accepted, in bytes (the Mozilla bundle is about 220 KiB).
pub(crate) const MAX_CA_FILE: u64 = 4 * 1024 * 1024;

/// Reads a CA file through the bounded, checked reader (links followed; a regular file of at
/// most [`MAX_CA_FILE`] bytes).
pub(crate) fn read_ca_file(path: &Path) -> Result<Vec<u8>, identity_core::fs::FileError> {
    identity_core::fs::read(path, &ReadOptions::configured(MAX_CA_FILE))
}

pub(super) fn read_pem_file(
    path: &Path,
    variable: &str,
) -> Result<Vec<CertificateDer<'static>>, Error> {
    let bytes = read_ca_file(path).map_err(|e| {
        Error::invalid_configuration(
            NAME,
            format!(
                "{variable} names {}: {e}; it must be a readable regular file of at most 4 MiB; \
                 fix the path or unset {variable}",
                path.display()
            ),
        )
        .with_source(e)
    })?;
    let certs = parse_pem_certs(&bytes);
    if certs.is_empty() {
        return Err(Error::invalid_configuration(
            NAME,
            format!(
                "{variable} names {}, which holds no PEM certificate",
                path.display()
            ),
        ));
    }
    Ok(certs)
}

pub(super) fn read_pem_dir(dir: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Error::invalid_configuration(
            NAME,
            format!(
                "SSL_CERT_DIR names {}, which cannot be read; fix the path or unset SSL_CERT_DIR",
                dir.display()
            ),
        )
        .with_source(e)
    })?;
    // Bounded: a directory with more entries than any certificate store is cut short.
    let mut paths: Vec<PathBuf> = entries
        .take(MAX_DIR_ENTRIES)
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    paths.sort();
    // Directories hold other files too (hash links, READMEs): take what parses. Entries that are
    // not regular files (FIFOs, devices, subdirectories) or are too large are skipped at once.
    let mut certs = Vec::new();
    for path in &paths {
        match read_ca_file(path) {
            Ok(bytes) => certs.extend(parse_pem_certs(&bytes)),
            Err(error) => {
                tracing::debug!(path = %path.display(), %error, "skipping an SSL_CERT_DIR entry");
            }
        }
    }
    Ok(certs)
}

/// The most entries read from one `SSL_CERT_DIR` directory.
pub(super) const MAX_DIR_ENTRIES: usize = 10_000;
