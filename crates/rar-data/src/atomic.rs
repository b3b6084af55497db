//! Writing files so that a reader never sees half of one and a failure keeps the old one.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

/// The temporary name `path` is written under before it is renamed into place: a hidden
/// sibling in the same directory (so the rename is atomic), `.{name}.tmp`.
pub fn temporary_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

/// Writes `bytes` to `path` atomically: into [`temporary_path`], synced to disk, then renamed
/// over `path`. On any failure the previous `path` (if any) is untouched and the temporary
/// file is removed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temporary_path(path);
    let written = (|| {
        let mut file = std::fs::File::create(&tmp).map_err(|e| DataError::io(&tmp, e))?;
        file.write_all(bytes).map_err(|e| DataError::io(&tmp, e))?;
        file.sync_all().map_err(|e| DataError::io(&tmp, e))?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(|e| DataError::io(path, e))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert!(!temporary_path(&path).exists());
        // A target that cannot be replaced (a directory) keeps it and cleans up.
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        assert!(write_atomic(&sub, b"x").is_err());
        assert!(sub.is_dir() && !temporary_path(&sub).exists());
    }
}
