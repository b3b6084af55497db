//! Locating the reference parity fixtures (`shared/parity/`) for tests and benchmarks.
//!
//! Parity tests in every crate find the fixtures the same way:
//!
//! 1. if `RAR_PARITY_DIR` is set, that directory is used, and it is an error for it (or any
//!    file a test asks for) to be missing — CI sets it, so a missing fixture fails CI;
//! 2. otherwise a `shared/parity` directory next to the workspace or any of its ancestors is
//!    used when present (the developer layout `…/main` + `…/shared`);
//! 3. otherwise there are no fixtures and parity tests report that they were skipped.

use std::path::{Path, PathBuf};

/// Environment variable naming the fixture directory.
pub const PARITY_DIR_ENV: &str = "RAR_PARITY_DIR";

/// Where the fixtures are, or why they cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParityDir {
    /// Fixtures found at this directory.
    Found(PathBuf),
    /// `RAR_PARITY_DIR` names a directory that does not exist (tests must fail).
    Missing(PathBuf),
    /// The variable is unset and no `shared/parity` was found (tests may skip).
    Absent,
}

/// Resolves the fixture directory as described in the module docs.
pub fn parity_dir() -> ParityDir {
    if let Some(dir) = std::env::var_os(PARITY_DIR_ENV) {
        let dir = PathBuf::from(dir);
        return if dir.is_dir() {
            ParityDir::Found(dir)
        } else {
            ParityDir::Missing(dir)
        };
    }
    let starts = [
        std::env::current_dir().ok(),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR"))),
    ];
    for start in starts.into_iter().flatten() {
        for ancestor in start.ancestors() {
            let candidate = ancestor.join("shared").join("parity");
            if candidate.join("manifest.json").is_file() {
                return ParityDir::Found(candidate);
            }
        }
    }
    ParityDir::Absent
}

/// For tests: the fixture directory, `None` (after printing why) when fixtures are absent
/// and the variable is unset; panics with a clear message when `RAR_PARITY_DIR` is set but
/// missing.
pub fn parity_dir_for_tests() -> Option<PathBuf> {
    match parity_dir() {
        ParityDir::Found(dir) => Some(dir),
        ParityDir::Missing(dir) => panic!(
            "{PARITY_DIR_ENV}={} does not exist: the parity fixtures are required",
            dir.display()
        ),
        ParityDir::Absent => {
            eprintln!(
                "parity fixtures not found ({PARITY_DIR_ENV} unset, no shared/parity): skipped"
            );
            None
        }
    }
}

/// The `rar_*` model directories under a fixture directory (each has a `config.json`),
/// sorted by name. The same tests run over every such directory.
pub fn rar_model_dirs(parity: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(parity)? {
        let path = entry?.path();
        let is_rar = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("rar_"));
        if is_rar && path.join("config.json").is_file() {
            dirs.push(path);
        }
    }
    dirs.sort();
    Ok(dirs)
}
