//! Writing the persistent cache file so that only the current user can read it, and nobody can
//! redirect the write.

use std::io::Write as _;
use std::path::Path;

/// Writes `bytes` to `path` through a temporary file with mode 0600, renamed into place.
pub(super) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let directory = path.parent().unwrap_or_else(|| Path::new("."));
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(directory)?;
    // A directory others may write to would let them plant or swap files under this one.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(directory)?.permissions().mode();
        if mode & 0o022 != 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "the cache directory may be written by its group or others",
            ));
        }
    }
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("cache");
    let mut nonce = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
        .map_err(|_| std::io::Error::other("no system randomness"))?;
    let nonce: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
    let temp = directory.join(format!(".{file_name}.{nonce}.tmp"));
    let mut options = std::fs::OpenOptions::new();
    // A new file only: never through a link or a file planted at the temporary name.
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let result = (|| {
        let mut file = options.open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}
