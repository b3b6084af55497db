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

/// Checks, before any work, that files can be written into `dir`: creates it if missing and
/// writes and removes a probe file. Errors name the directory.
pub fn check_writable_dir(dir: &Path) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        return Err(DataError::input(
            "output directory",
            format!("{} exists and is not a directory", dir.display()),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    let probe = dir.join(format!(".rar-write-probe-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| DataError::io(dir, e))?;
    std::fs::remove_file(&probe).map_err(|e| DataError::io(&probe, e))
}

/// Checks, before any work, that `path` can be written as a file: it is not a directory and
/// its directory is writable (created if missing).
pub fn check_writable_file(path: &Path) -> Result<()> {
    if path.is_dir() {
        return Err(DataError::input(
            "output file",
            format!("{} is a directory", path.display()),
        ));
    }
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => check_writable_dir(dir),
        _ => check_writable_dir(Path::new(".")),
    }
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
        // Writability checks.
        check_writable_file(&dir.path().join("new/deeper/out.png")).unwrap();
        assert!(check_writable_file(&sub).is_err());
        assert!(
            check_writable_dir(&path).is_err(),
            "a file is not a directory"
        );
    }
}
