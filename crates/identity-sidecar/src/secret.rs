//! The caller secret (`X-IDENTITY-HEADER`): generated at start and written to a file only the
//! allowed users can read, or read from a file the operator provides. Never passed on a
//! command line, never logged.

use std::fmt::Write as _;
use std::io::{self, Read as _, Write as _};
use std::path::Path;

use identity_core::Secret;
use identity_core::fs::ReadOptions;

/// The largest secret file read.
const MAX_SECRET_FILE: u64 = 4096;
/// The shortest secret accepted from a file.
pub const MIN_SECRET_LEN: usize = 16;

/// A new random secret: 32 bytes from the operating system's generator, as 64 hex digits.
///
/// # Errors
/// When the system generator fails.
pub fn generate() -> io::Result<Secret> {
    use ring::rand::{SecureRandom as _, SystemRandom};
    let mut buf = [0u8; 32];
    SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| io::Error::other("the system random generator failed"))?;
    let mut out = String::with_capacity(64);
    for b in buf {
        let _ = write!(out, "{b:02x}");
    }
    Ok(Secret::new(out))
}

/// Writes `secret` to `path` with permission bits `mode` (Unix; e.g. `0o600` for the
/// sidecar's user only, `0o640` to let its group read). The file is written beside `path`
/// under a temporary name created exclusively with `mode`, then renamed over `path`, so no
/// reader ever sees a partial file or wider permissions.
///
/// # Errors
/// When `mode` lets others (not owner or group) read or anyone write, or on any I/O failure.
pub fn write_file(path: &Path, secret: &Secret, mode: u32) -> io::Result<()> {
    if mode & 0o027 != 0 || mode & 0o400 == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the secret file mode must let the owner read and nobody else write, and give others nothing (e.g. 600 or 640)",
        ));
    }
    let file_name = path.file_name().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "the secret path names no file")
    })?;
    let mut tmp_name = file_name.to_os_string();
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        // create_new (O_EXCL) also refuses a symlink planted at the temporary name.
        options.mode(mode);
    }
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        let mut file = options.open(&tmp)?;
        #[cfg(unix)]
        {
            // The umask may have narrowed the mode; set it exactly.
            use std::os::unix::fs::PermissionsExt as _;
            file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        }
        file.write_all(secret.secret().as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Reads a secret from a file the operator provides: a regular file of at most 4 KiB whose
/// permission bits give others nothing (Unix), holding at least 16 characters once a trailing
/// newline is removed.
///
/// # Errors
/// A message naming the failed check, never the file's contents.
pub fn read_file(path: &Path) -> Result<Secret, String> {
    let (mut file, meta) = identity_core::fs::open(path, &ReadOptions::configured(MAX_SECRET_FILE))
        .map_err(|e| format!("cannot read the secret file {}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if meta.permissions().mode() & 0o007 != 0 {
            return Err(format!(
                "the secret file {} is accessible to all users; make it readable by the allowed users only (chmod 600 or 640)",
                path.display()
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    let mut raw = String::new();
    (&mut file)
        .take(MAX_SECRET_FILE + 1)
        .read_to_string(&mut raw)
        .map_err(|_| {
            format!(
                "the secret file {} is not readable UTF-8 text",
                path.display()
            )
        })?;
    let value = raw.trim_end_matches(['\r', '\n']);
    if value.len() < MIN_SECRET_LEN || value.chars().any(char::is_control) {
        return Err(format!(
            "the secret in {} must be at least {MIN_SECRET_LEN} printable characters on one line",
            path.display()
        ));
    }
    Ok(Secret::new(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_secret_is_64_hex_digits_and_new_each_time() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_eq!(a.secret().len(), 64);
        assert!(a.secret().chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[cfg(unix)]
    #[test]
    fn a_written_file_has_the_mode_asked_for_and_reads_back() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        let secret = generate().unwrap();
        write_file(&path, &secret, 0o600).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read_file(&path).unwrap(), secret);
        // Replacing keeps the mode and the new value.
        let again = generate().unwrap();
        write_file(&path, &again, 0o640).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o640
        );
        assert_eq!(read_file(&path).unwrap(), again);
        assert!(write_file(&path, &again, 0o644).is_err());
        assert!(write_file(&path, &again, 0o660).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn a_world_readable_short_or_missing_file_is_refused_without_echoing_it() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, "planted-secret-value-123\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_file(&path).unwrap_err();
        assert!(e.contains("accessible to all users"), "{e}");
        assert!(!e.contains("planted"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            read_file(&path).unwrap().secret(),
            "planted-secret-value-123"
        );
        std::fs::write(&path, "short").unwrap();
        assert!(read_file(&path).unwrap_err().contains("at least 16"));
        assert!(read_file(&dir.path().join("none")).is_err());
    }
}
