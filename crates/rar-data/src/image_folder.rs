//! The images of an ImageNet-layout folder, enumerated like torchvision's `ImageFolder`.
//!
//! Class folders in sorted order give labels 0, 1, … (for ImageNet's `train/` the usual
//! 0…999), files are sorted by path within each class (sub-folders followed), and only image
//! extensions count.

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

/// Extensions torchvision's `ImageFolder` accepts (compared case-insensitively).
pub const IMAGE_EXTENSIONS: [&str; 9] = [
    "jpg", "jpeg", "png", "ppm", "bmp", "pgm", "tif", "tiff", "webp",
];

/// The images of an `ImageFolder` tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFolder {
    /// The root (the directory holding one folder per class).
    pub root: PathBuf,
    /// Class folder names in label order.
    pub classes: Vec<String>,
    /// Every image as (path relative to `root`, label), in processing order.
    pub images: Vec<(PathBuf, u16)>,
}

fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries = std::fs::read_dir(dir)
        .map_err(|e| DataError::io(dir, e))?
        .map(|e| e.map(|e| e.path()).map_err(|err| DataError::io(dir, err)))
        .collect::<Result<Vec<_>>>()?;
    entries.sort();
    for path in entries {
        // `metadata` follows symlinks, as ImageFolder's walk does.
        let meta = std::fs::metadata(&path).map_err(|e| DataError::io(&path, e))?;
        if meta.is_dir() {
            collect_files(&path, out)?;
        } else if has_image_extension(&path) {
            out.push(path);
        }
    }
    Ok(())
}

impl ImageFolder {
    /// Enumerates `root/<class>/**/<image>` (sorted classes, sorted files).
    pub fn scan(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        let mut classes = Vec::new();
        for entry in std::fs::read_dir(&root).map_err(|e| DataError::io(&root, e))? {
            let path = entry.map_err(|e| DataError::io(&root, e))?.path();
            if std::fs::metadata(&path)
                .map_err(|e| DataError::io(&path, e))?
                .is_dir()
            {
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .ok_or_else(|| {
                        DataError::input(
                            "input",
                            format!("class folder {} is not valid UTF-8", path.display()),
                        )
                    })?
                    .to_string();
                classes.push(name);
            }
        }
        classes.sort();
        if classes.is_empty() {
            return Err(DataError::input(
                "input",
                format!(
                    "{} has no class folders (expected the ImageNet layout <dir>/<wnid>/*.JPEG)",
                    root.display()
                ),
            ));
        }
        if classes.len() > usize::from(u16::MAX) + 1 {
            return Err(DataError::input(
                "input",
                format!("{} classes do not fit 16-bit labels", classes.len()),
            ));
        }
        let mut images = Vec::new();
        for (label, class) in classes.iter().enumerate() {
            let mut files = Vec::new();
            collect_files(&root.join(class), &mut files)?;
            for f in files {
                let rel = f.strip_prefix(&root).unwrap_or(&f).to_path_buf();
                images.push((rel, label as u16));
            }
        }
        Ok(Self {
            root,
            classes,
            images,
        })
    }

    /// FNV-1a 64 over every relative path and label, to recognise the same input on resume.
    pub fn fingerprint(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for &b in bytes {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        };
        for (path, label) in &self.images {
            eat(path.to_string_lossy().as_bytes());
            eat(&[0]);
            eat(&label.to_le_bytes());
        }
        format!("{h:016x}")
    }
}
