//! [`HostFiles`]: the one question source detection asks the host's file system ("is the
//! Azure Arc agent installed?"), behind a trait so that tests answer it without touching
//! `/opt`.

use std::fmt;
use std::path::{Path, PathBuf};

/// What managed-identity detection may learn from the host's file system.
///
/// The default, [`SystemHostFiles`], asks the real file system; [`ListedHostFiles`] answers
/// from a fixed list (tests, or a deployment that wants detection from the environment
/// alone). Pass one with `ManagedIdentityCredentialBuilder::host_files`.
pub trait HostFiles: Send + Sync + fmt::Debug {
    /// True when `path` names an existing regular file (symlinks followed). Errors (no such
    /// file, no permission) answer `false`.
    fn is_file(&self, path: &Path) -> bool;
}

/// The real file system: one `stat`, nothing read.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemHostFiles;

impl HostFiles for SystemHostFiles {
    fn is_file(&self, path: &Path) -> bool {
        std::fs::metadata(path).is_ok_and(|m| m.is_file())
    }
}

/// A fixed list of files that exist; every other path does not. `ListedHostFiles::default()`
/// is a host with no files at all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListedHostFiles {
    files: Vec<PathBuf>,
}

impl ListedHostFiles {
    /// A host on which exactly `files` exist.
    pub fn new(files: impl IntoIterator<Item = impl Into<PathBuf>>) -> Self {
        Self {
            files: files.into_iter().map(Into::into).collect(),
        }
    }
}

impl HostFiles for ListedHostFiles {
    fn is_file(&self, path: &Path) -> bool {
        self.files.iter().any(|f| f == path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listed_view_knows_only_its_files() {
        let files = ListedHostFiles::new(["/opt/azcmagent/bin/himds"]);
        assert!(files.is_file(Path::new("/opt/azcmagent/bin/himds")));
        assert!(!files.is_file(Path::new("/opt/azcmagent/bin")));
        assert!(!ListedHostFiles::default().is_file(Path::new("/opt/azcmagent/bin/himds")));
    }

    #[test]
    fn the_system_view_answers_for_real_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("himds");
        std::fs::write(&file, b"").unwrap();
        assert!(SystemHostFiles.is_file(&file));
        assert!(!SystemHostFiles.is_file(dir.path()));
        assert!(!SystemHostFiles.is_file(&dir.path().join("missing")));
    }
}
