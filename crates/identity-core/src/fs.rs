//! Bounded, checked file reads: the one way every credential reads a file it is pointed at.
//!
//! Credentials read files named by configuration (`AZURE_FEDERATED_TOKEN_FILE`,
//! `AZURE_CLIENT_CERTIFICATE_PATH`, `SSL_CERT_FILE`, …) and files that a host hands over
//! (the Azure Arc key file, a persistent token cache). A plain `std::fs::read` trusts the
//! path: a FIFO there blocks the caller for ever, `/dev/zero` reads until memory runs out, a
//! symlink swapped in after a path-based check sends another file's contents. [`read`] closes
//! those holes in one place:
//!
//! 1. the file is **opened first**, non-blocking (a FIFO or device cannot stall the open),
//!    without following a final symlink when [`ReadOptions::follow_symlinks`] is off;
//! 2. the **opened descriptor** is checked (never the path again, so nothing can be swapped
//!    in between): a regular file, no larger than [`ReadOptions::max_len`], and where asked,
//!    a single hard link and owned by the current user with no write access for others;
//! 3. at most `max_len` bytes are read; a file that grew past the cap since the check is
//!    refused, not truncated.
//!
//! Errors ([`FileError`]) name the check that failed, never the file's contents.
//!
//! ```
//! use identity_core::fs::{ReadOptions, read};
//! # let dir = std::env::temp_dir();
//! # let path = dir.join(format!("identity-core-fs-doc-{}", std::process::id()));
//! # std::fs::write(&path, b"token").unwrap();
//! let bytes = read(&path, &ReadOptions::configured(64 * 1024))?;
//! # assert_eq!(bytes, b"token");
//! # std::fs::remove_file(&path).unwrap();
//! # Ok::<(), identity_core::fs::FileError>(())
//! ```

use std::fmt;
use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::path::Path;

/// What [`read`] checks before and while reading a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadOptions {
    /// The largest file accepted, in bytes.
    pub max_len: u64,
    /// Whether a symlink as the final path component is followed. Configured paths follow
    /// links (Kubernetes projects secrets as links into a `..data` directory); files that a
    /// host or this library owns do not.
    pub follow_symlinks: bool,
    /// Refuse a file with more than one hard link (a link to a file outside the expected
    /// directory passes every path check).
    pub single_link: bool,
    /// Refuse a file not owned by the current user, or writable by its group or others
    /// (Unix only; ignored elsewhere).
    pub private: bool,
}

impl ReadOptions {
    /// For a path the user configured (an environment variable, a builder option): follow
    /// links, check the descriptor is a regular file no larger than `max_len` bytes.
    #[must_use]
    pub const fn configured(max_len: u64) -> Self {
        Self {
            max_len,
            follow_symlinks: true,
            single_link: false,
            private: false,
        }
    }

    /// For a file handed over by a host or written by this library, which nobody else should
    /// be able to plant or change: no final symlink, a single hard link, a regular file no
    /// larger than `max_len` bytes, and (with [`private`](Self::private)) owned by the current
    /// user and not writable by others.
    #[must_use]
    pub const fn strict(max_len: u64) -> Self {
        Self {
            max_len,
            follow_symlinks: false,
            single_link: true,
            private: false,
        }
    }

    /// Also require the file to be owned by the current user and not writable by its group
    /// or others (Unix).
    #[must_use]
    pub const fn private(mut self) -> Self {
        self.private = true;
        self
    }
}

/// Why [`read`] refused or failed to read a file. The message names the failed check, never
/// the file's contents.
#[derive(Debug)]
#[non_exhaustive]
pub enum FileError {
    /// The file does not exist.
    NotFound,
    /// The final path component is a symlink and links are not followed.
    Symlink,
    /// The path names a directory, FIFO, socket or device rather than a regular file.
    NotRegular,
    /// The file is larger than the cap (in bytes).
    TooLarge(u64),
    /// The file has more than one hard link.
    Linked,
    /// The file is owned by another user, or writable by its group or others.
    NotPrivate,
    /// Any other I/O failure (permission denied, …).
    Io(io::Error),
}

impl FileError {
    /// Whether the file simply does not exist.
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound)
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound => f.write_str("the file does not exist"),
            Self::Symlink => f.write_str("the path is a symbolic link, which is not accepted here"),
            Self::NotRegular => f.write_str("the path is not a regular file"),
            Self::TooLarge(max) => write!(f, "the file is larger than {max} bytes"),
            Self::Linked => f.write_str("the file has more than one hard link"),
            Self::NotPrivate => {
                f.write_str("the file is not owned by the current user, or others may write to it")
            }
            Self::Io(e) => write!(f, "the file cannot be read ({})", e.kind()),
        }
    }
}

impl std::error::Error for FileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

fn io_error(e: io::Error) -> FileError {
    match e.kind() {
        io::ErrorKind::NotFound => FileError::NotFound,
        _ => match e.raw_os_error() {
            // open(2) with O_NOFOLLOW on a final symlink fails with ELOOP.
            #[cfg(unix)]
            Some(code) if code == rustix::io::Errno::LOOP.raw_os_error() => FileError::Symlink,
            _ => FileError::Io(e),
        },
    }
}

/// Opens `path` as described in the [module docs](self) and returns the opened file and its
/// metadata, after every check.
///
/// # Errors
/// A [`FileError`] naming the failed check.
pub fn open(path: &Path, options: &ReadOptions) -> Result<(File, Metadata), FileError> {
    let file = open_options(options).open(path).map_err(io_error)?;
    let meta = file.metadata().map_err(FileError::Io)?;
    check(&meta, options)?;
    Ok((file, meta))
}

/// Reads the whole file at `path`, after the checks described in the [module docs](self).
///
/// This is a blocking call; the files it is meant for are small and local.
///
/// # Errors
/// A [`FileError`] naming the failed check, or the I/O error.
pub fn read(path: &Path, options: &ReadOptions) -> Result<Vec<u8>, FileError> {
    let (file, meta) = open(path, options)?;
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0).min(1 << 20));
    file.take(options.max_len.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(FileError::Io)?;
    if bytes.len() as u64 > options.max_len {
        return Err(FileError::TooLarge(options.max_len));
    }
    Ok(bytes)
}

/// [`read`], then UTF-8.
///
/// # Errors
/// As [`read`]; a file that is not UTF-8 is an [`FileError::Io`] of kind `InvalidData`.
pub fn read_to_string(path: &Path, options: &ReadOptions) -> Result<String, FileError> {
    let bytes = read(path, options)?;
    String::from_utf8(bytes).map_err(|_| {
        FileError::Io(io::Error::new(
            io::ErrorKind::InvalidData,
            "the file is not UTF-8 text",
        ))
    })
}

#[cfg(unix)]
fn open_options(options: &ReadOptions) -> OpenOptions {
    use rustix::fs::OFlags;
    use std::os::unix::fs::OpenOptionsExt;
    let mut flags = OFlags::NONBLOCK | OFlags::NOCTTY;
    if !options.follow_symlinks {
        flags |= OFlags::NOFOLLOW;
    }
    let mut open = OpenOptions::new();
    open.read(true)
        .custom_flags(i32::try_from(flags.bits()).unwrap_or_default());
    open
}

#[cfg(not(unix))]
fn open_options(_options: &ReadOptions) -> OpenOptions {
    let mut open = OpenOptions::new();
    open.read(true);
    open
}

fn check(meta: &Metadata, options: &ReadOptions) -> Result<(), FileError> {
    if !meta.file_type().is_file() {
        return Err(FileError::NotRegular);
    }
    if meta.len() > options.max_len {
        return Err(FileError::TooLarge(options.max_len));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if options.single_link && meta.nlink() > 1 {
            return Err(FileError::Linked);
        }
        if options.private
            && (meta.uid() != rustix::process::geteuid().as_raw() || meta.mode() & 0o022 != 0)
        {
            return Err(FileError::NotPrivate);
        }
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, Instant};

    #[test]
    fn reads_a_small_regular_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"hello").unwrap();
        assert_eq!(read(&p, &ReadOptions::configured(5)).unwrap(), b"hello");
        assert_eq!(read(&p, &ReadOptions::strict(5)).unwrap(), b"hello");
    }

    #[test]
    fn a_file_over_the_cap_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"123456").unwrap();
        assert!(matches!(
            read(&p, &ReadOptions::configured(5)),
            Err(FileError::TooLarge(5))
        ));
    }

    #[test]
    fn dev_zero_is_refused_without_reading() {
        let err = read(Path::new("/dev/zero"), &ReadOptions::configured(1024)).unwrap_err();
        assert!(matches!(err, FileError::NotRegular), "{err}");
    }

    #[test]
    fn a_fifo_is_refused_at_once() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &p,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let started = Instant::now();
        let err = read(&p, &ReadOptions::configured(1024)).unwrap_err();
        assert!(matches!(err, FileError::NotRegular), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_directory_is_refused() {
        let d = tempfile::tempdir().unwrap();
        assert!(matches!(
            read(d.path(), &ReadOptions::configured(1024)),
            Err(FileError::NotRegular | FileError::Io(_))
        ));
    }

    #[test]
    fn strict_refuses_a_symlink_and_configured_follows_it() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("target");
        std::fs::write(&target, b"x").unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(
            read(&link, &ReadOptions::strict(10)),
            Err(FileError::Symlink)
        ));
        assert_eq!(read(&link, &ReadOptions::configured(10)).unwrap(), b"x");
    }

    #[test]
    fn strict_refuses_a_hard_link() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        std::fs::write(&a, b"x").unwrap();
        std::fs::hard_link(&a, d.path().join("b")).unwrap();
        assert!(matches!(
            read(&a, &ReadOptions::strict(10)),
            Err(FileError::Linked)
        ));
    }

    #[test]
    fn private_refuses_a_file_others_may_write() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"x").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(matches!(
            read(&p, &ReadOptions::strict(10).private()),
            Err(FileError::NotPrivate)
        ));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read(&p, &ReadOptions::strict(10).private()).unwrap(), b"x");
    }

    #[test]
    fn a_missing_file_is_not_found() {
        let d = tempfile::tempdir().unwrap();
        assert!(
            read(&d.path().join("nope"), &ReadOptions::configured(1))
                .unwrap_err()
                .is_not_found()
        );
    }
}
