//! [`NpzWriter`]: streaming, resumable writing of the evaluation file.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::npz::error::{NpzError, Result};
use crate::npz::format::{
    CRC_OFFSET, LOCAL_HEADER_LEN, central_directory, end_records, local_header, npy_header,
};
use crate::npz::manifest::{manifest_differences, with_suffix};

/// Version of the progress record `<path>.partial.json`.
const PROGRESS_VERSION: u32 = 1;

/// Writes `[N, H, W, 3]` uint8 images into an `.npz` one image at a time.
///
/// An interrupted run leaves `<path>.partial` and its progress record `<path>.partial.json`,
/// rewritten atomically by every [`NpzWriter::flush`]: the format version, the array shape,
/// the caller's *manifest* (every setting that decides the images: seeds, guidance, model …),
/// the images flushed and the CRC-32 of the member up to them. [`NpzWriter::create_or_resume`]
/// refuses to resume when the manifest differs (listing the differing settings, so one run's
/// images are never mixed with another's), checks the CRC of the flushed part (a file altered
/// since is an error, not a silently wrong result), drops whatever came after the last flush,
/// and reports how many images are written so the caller continues from the next one.
pub struct NpzWriter {
    final_path: PathBuf,
    partial_path: PathBuf,
    progress_path: PathBuf,
    out: BufWriter<File>,
    crc: crc32fast::Hasher,
    shape: [usize; 4],
    manifest: serde_json::Value,
    written: usize,
    data_start: u64,
}

impl NpzWriter {
    /// Starts `<path>.partial` for `shape` = `[N, H, W, C]`, or resumes it if it was started
    /// for the same shape with the same `manifest` (see [`NpzWriter`]). Returns the
    /// writer; [`Self::images_written`] tells where to continue. `path` must not be a
    /// directory, nor an existing finished file (delete it to write it again).
    pub fn create_or_resume(
        path: impl AsRef<Path>,
        shape: [usize; 4],
        manifest: &serde_json::Value,
    ) -> Result<Self> {
        let final_path = path.as_ref().to_path_buf();
        let partial_path = with_suffix(&final_path, ".partial");
        let progress_path = with_suffix(&final_path, ".partial.json");
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| NpzError::Io { path, source }
        };
        let bad = |reason: String| NpzError::BadImage {
            path: final_path.clone(),
            reason,
        };
        if shape.contains(&0) {
            return Err(bad(format!("array shape {shape:?} has a zero dimension")));
        }
        let image_bytes = shape[1..]
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
            .ok_or_else(|| bad(format!("array shape {shape:?} is too large")))?;
        let data_bytes = image_bytes
            .checked_mul(shape[0] as u64)
            .ok_or_else(|| bad(format!("array shape {shape:?} is too large")))?;
        if final_path.is_dir() {
            return Err(bad("is a directory, not an .npz file".into()));
        }
        if final_path.exists() && !partial_path.exists() {
            return Err(bad(
                "already exists and is finished; delete it to sample it again".into(),
            ));
        }
        let header = npy_header(&shape);
        let data_start = LOCAL_HEADER_LEN + header.len() as u64;
        let member_len = header.len() as u64 + data_bytes;
        let mut expected_prefix = local_header(member_len);
        expected_prefix.extend_from_slice(&header);

        if partial_path.exists() {
            let incompatible = |reason: String| NpzError::Incompatible {
                path: partial_path.clone(),
                reason: format!(
                    "{reason} (delete it and {} to start over)",
                    progress_path.display()
                ),
            };
            let recorded: serde_json::Value = std::fs::read_to_string(&progress_path)
                .map_err(|e| incompatible(format!("its progress record cannot be read: {e}")))
                .and_then(|t| {
                    serde_json::from_str(&t)
                        .map_err(|e| incompatible(format!("its progress record is not JSON: {e}")))
                })?;
            if recorded["version"] != PROGRESS_VERSION {
                return Err(incompatible(format!(
                    "its progress record has version {}, this writer {PROGRESS_VERSION}",
                    recorded["version"]
                )));
            }
            if recorded["shape"] != serde_json::json!(shape) {
                return Err(incompatible(format!(
                    "it was started for shape {}, not {shape:?}",
                    recorded["shape"]
                )));
            }
            let diffs = manifest_differences(&recorded["manifest"], manifest);
            if !diffs.is_empty() {
                return Err(incompatible(format!(
                    "it was started with other settings — {}",
                    diffs.join("; ")
                )));
            }
            let flushed = recorded["images"].as_u64().unwrap_or(u64::MAX);
            let want_crc = recorded["crc32"].as_u64();
            if flushed > shape[0] as u64 || want_crc.is_none() {
                return Err(incompatible("its progress record is malformed".into()));
            }
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&partial_path)
                .map_err(io_err(&partial_path))?;
            let keep = data_start + flushed * image_bytes;
            let len = file.metadata().map_err(io_err(&partial_path))?.len();
            if len < keep {
                return Err(incompatible(format!(
                    "it holds {len} bytes, fewer than the {flushed} images its record lists"
                )));
            }
            let mut prefix = vec![0u8; expected_prefix.len()];
            file.read_exact(&mut prefix)
                .map_err(io_err(&partial_path))?;
            // The CRC field is a placeholder until finish; compare everything else.
            prefix[CRC_OFFSET as usize..CRC_OFFSET as usize + 4].fill(0);
            if prefix != expected_prefix {
                return Err(incompatible(format!(
                    "it was not started by this writer for shape {shape:?}"
                )));
            }
            // Whatever came after the last flush is dropped; the rest must be intact.
            file.set_len(keep).map_err(io_err(&partial_path))?;
            let mut crc = crc32fast::Hasher::new();
            file.seek(SeekFrom::Start(LOCAL_HEADER_LEN))
                .map_err(io_err(&partial_path))?;
            let mut remaining = keep - LOCAL_HEADER_LEN;
            let mut buf = vec![0u8; 1 << 20];
            while remaining > 0 {
                let n = remaining.min(buf.len() as u64) as usize;
                file.read_exact(&mut buf[..n])
                    .map_err(io_err(&partial_path))?;
                crc.update(&buf[..n]);
                remaining -= n as u64;
            }
            if Some(u64::from(crc.clone().finalize())) != want_crc {
                return Err(incompatible(
                    "its images were altered since they were written (checksum mismatch)".into(),
                ));
            }
            file.seek(SeekFrom::Start(keep))
                .map_err(io_err(&partial_path))?;
            return Ok(Self {
                final_path,
                partial_path,
                progress_path,
                out: BufWriter::with_capacity(1 << 20, file),
                crc,
                shape,
                manifest: manifest.clone(),
                written: flushed as usize,
                data_start,
            });
        }

        let file = File::create(&partial_path).map_err(io_err(&partial_path))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(&expected_prefix)
            .map_err(io_err(&partial_path))?;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&header);
        let mut writer = Self {
            final_path,
            partial_path,
            progress_path,
            out,
            crc,
            shape,
            manifest: manifest.clone(),
            written: 0,
            data_start,
        };
        writer.flush()?;
        Ok(writer)
    }

    /// Images already in the file (after a resume, the index of the next image to push).
    pub fn images_written(&self) -> usize {
        self.written
    }

    /// Total images the array holds (`N`).
    pub fn capacity(&self) -> usize {
        self.shape[0]
    }

    /// Appends one image of `H·W·C` bytes (HWC, row-major).
    pub fn push(&mut self, image: &[u8]) -> Result<()> {
        let expected = self.shape[1] * self.shape[2] * self.shape[3];
        if image.len() != expected {
            return Err(NpzError::BadImage {
                path: self.partial_path.clone(),
                reason: format!(
                    "image has {} bytes, expected {expected} ({}×{}×{})",
                    image.len(),
                    self.shape[1],
                    self.shape[2],
                    self.shape[3]
                ),
            });
        }
        if self.written == self.shape[0] {
            return Err(NpzError::BadImage {
                path: self.partial_path.clone(),
                reason: format!("the array is already full ({} images)", self.shape[0]),
            });
        }
        self.out.write_all(image).map_err(|source| NpzError::Io {
            path: self.partial_path.clone(),
            source,
        })?;
        self.crc.update(image);
        self.written += 1;
        Ok(())
    }

    /// Flushes written images to disk and records the progress (call periodically: an
    /// interruption loses what came after the last flush).
    pub fn flush(&mut self) -> Result<()> {
        self.out
            .flush()
            .and_then(|()| self.out.get_ref().sync_data())
            .map_err(|source| NpzError::Io {
                path: self.partial_path.clone(),
                source,
            })?;
        let record = serde_json::json!({
            "version": PROGRESS_VERSION,
            "shape": self.shape,
            "manifest": self.manifest,
            "images": self.written,
            "crc32": self.crc.clone().finalize(),
        });
        rar_data::write_atomic(&self.progress_path, record.to_string().as_bytes()).map_err(|e| {
            NpzError::Io {
                path: self.progress_path.clone(),
                source: io::Error::other(e.to_string()),
            }
        })
    }

    /// Completes the archive (all `N` images must have been pushed) and renames it to its
    /// final path.
    pub fn finish(mut self) -> Result<PathBuf> {
        if self.written != self.shape[0] {
            return Err(NpzError::BadImage {
                path: self.partial_path.clone(),
                reason: format!(
                    "only {} of {} images were written",
                    self.written, self.shape[0]
                ),
            });
        }
        let path = self.partial_path.clone();
        let io_err = |source| NpzError::Io {
            path: path.clone(),
            source,
        };
        let crc = self.crc.clone().finalize();
        let member_len = self.data_start - LOCAL_HEADER_LEN
            + (self.shape[0] * self.shape[1] * self.shape[2] * self.shape[3]) as u64;
        self.out.flush().map_err(io_err)?;
        let cd_offset = LOCAL_HEADER_LEN + member_len;
        let mut tail = central_directory(crc, member_len);
        let cd_len = tail.len() as u64;
        tail.extend(end_records(cd_offset, cd_len));
        self.out.write_all(&tail).map_err(io_err)?;
        self.out.flush().map_err(io_err)?;
        let file = self.out.get_mut();
        file.seek(SeekFrom::Start(CRC_OFFSET)).map_err(io_err)?;
        file.write_all(&crc.to_le_bytes()).map_err(io_err)?;
        file.sync_all().map_err(io_err)?;
        std::fs::rename(&self.partial_path, &self.final_path).map_err(io_err)?;
        let _ = std::fs::remove_file(&self.progress_path);
        Ok(self.final_path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn image(i: usize, bytes: usize) -> Vec<u8> {
        (0..bytes).map(|k| ((i * 31 + k * 7) % 251) as u8).collect()
    }

    fn read_back(path: &Path) -> (String, Vec<u8>) {
        // Independent reader: the `zip` crate (checks the CRC while reading).
        let mut archive = zip::ZipArchive::new(File::open(path).unwrap()).unwrap();
        assert_eq!(archive.len(), 1);
        let mut member = archive.by_name("arr_0.npy").unwrap();
        let mut bytes = Vec::new();
        member.read_to_end(&mut bytes).unwrap();
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        let header = String::from_utf8(bytes[10..10 + header_len].to_vec()).unwrap();
        (header, bytes[10 + header_len..].to_vec())
    }

    #[test]
    fn round_trip_and_resume() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("samples.npz");
        let shape = [5, 4, 3, 3];
        let bytes = 4 * 3 * 3;
        let manifest = serde_json::json!({"seed": 1, "sampling": {"guidance": 4.0}});
        let mut w = NpzWriter::create_or_resume(&path, shape, &manifest).unwrap();
        for i in 0..3 {
            w.push(&image(i, bytes)).unwrap();
        }
        w.flush().unwrap();
        assert!(w.push(&[0; 5]).is_err());
        drop(w);
        // simulate a torn write: half an image at the end
        let partial = dir.path().join("samples.npz.partial");
        let mut f = OpenOptions::new().append(true).open(&partial).unwrap();
        f.write_all(&image(3, bytes)[..10]).unwrap();
        drop(f);
        // Other settings are refused, naming them; so is another shape.
        let other = serde_json::json!({"seed": 2, "sampling": {"guidance": 4.0}});
        let err = NpzWriter::create_or_resume(&path, shape, &other)
            .err()
            .expect("other settings are refused")
            .to_string();
        assert!(err.contains("seed: recorded 1, now 2"), "{err}");
        assert!(NpzWriter::create_or_resume(&path, [6, 4, 3, 3], &manifest).is_err());
        let mut w = NpzWriter::create_or_resume(&path, shape, &manifest).unwrap();
        assert_eq!(w.images_written(), 3);
        for i in 3..5 {
            w.push(&image(i, bytes)).unwrap();
        }
        assert!(w.push(&image(5, bytes)).is_err());
        let done = w.finish().unwrap();
        assert!(!partial.exists());
        assert!(!dir.path().join("samples.npz.partial.json").exists());
        let (header, data) = read_back(&done);
        assert!(header.contains("'shape': (5, 4, 3, 3)"), "{header}");
        assert!(header.contains("'descr': '|u1'"));
        let expected: Vec<u8> = (0..5).flat_map(|i| image(i, bytes)).collect();
        assert_eq!(data, expected);
        // A finished file is not overwritten; a directory is not a target.
        let err = NpzWriter::create_or_resume(&path, shape, &manifest)
            .err()
            .unwrap();
        assert!(err.to_string().contains("already exists"), "{err}");
        let err = NpzWriter::create_or_resume(dir.path(), shape, &manifest)
            .err()
            .unwrap();
        assert!(err.to_string().contains("directory"), "{err}");
    }

    #[test]
    fn altered_progress_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.npz");
        let shape = [4, 2, 2, 3];
        let manifest = serde_json::json!({"seed": 7});
        let mut w = NpzWriter::create_or_resume(&path, shape, &manifest).unwrap();
        for i in 0..2 {
            w.push(&image(i, 12)).unwrap();
        }
        w.flush().unwrap();
        drop(w);
        let partial = dir.path().join("s.npz.partial");
        let mut bytes = std::fs::read(&partial).unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 0x40;
        std::fs::write(&partial, &bytes).unwrap();
        let err = NpzWriter::create_or_resume(&path, shape, &manifest)
            .err()
            .unwrap();
        assert!(err.to_string().contains("checksum"), "{err}");
        // A partial file without its progress record is not resumed blindly.
        std::fs::remove_file(dir.path().join("s.npz.partial.json")).unwrap();
        let err = NpzWriter::create_or_resume(&path, shape, &manifest)
            .err()
            .unwrap();
        assert!(err.to_string().contains("progress record"), "{err}");
        // An absurd shape is an error, not an overflow.
        let huge = [usize::MAX, 1 << 20, 1 << 20, 3];
        assert!(NpzWriter::create_or_resume(dir.path().join("h.npz"), huge, &manifest).is_err());
    }

    /// Mutation fuzz of the resume path (fixed seed, bounded count): a flushed `.partial`
    /// with random bytes changed is never resumed silently and never panics; a damaged
    /// progress record is an error or (for changes JSON ignores) resumes the same images.
    #[test]
    fn mutated_partials_are_never_resumed_silently() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.npz");
        let (shape, bytes) = ([6, 2, 2, 3], 12);
        let manifest = serde_json::json!({"seed": 3});
        let mut w = NpzWriter::create_or_resume(&path, shape, &manifest).unwrap();
        for i in 0..4 {
            w.push(&image(i, bytes)).unwrap();
        }
        w.flush().unwrap();
        drop(w);
        let partial = dir.path().join("m.npz.partial");
        let progress = dir.path().join("m.npz.partial.json");
        let (data, record) = (
            std::fs::read(&partial).unwrap(),
            std::fs::read(&progress).unwrap(),
        );
        let mut rng = rar_core::rng::Xoshiro256PlusPlus::seed_from_u64(7);
        for k in 0..300 {
            let damage_data = k % 2 == 0;
            let mut mutant = if damage_data {
                data.clone()
            } else {
                record.clone()
            };
            let i = rng.below(mutant.len() as u64) as usize;
            mutant[i] ^= 1 << rng.below(8);
            std::fs::write(&partial, if damage_data { &mutant } else { &data }).unwrap();
            std::fs::write(&progress, if damage_data { &record } else { &mutant }).unwrap();
            let outcome =
                std::panic::catch_unwind(|| NpzWriter::create_or_resume(&path, shape, &manifest))
                    .unwrap_or_else(|_| panic!("mutant {k}: panicked"));
            match outcome {
                Err(_) => {}
                Ok(w) => {
                    // The CRC field is a placeholder that `finish` overwrites: harmless.
                    let placeholder = (CRC_OFFSET as usize..CRC_OFFSET as usize + 4).contains(&i);
                    assert!(
                        !damage_data || placeholder,
                        "mutant {k}: damaged images were resumed"
                    );
                    assert_eq!(w.images_written(), 4, "mutant {k}");
                }
            }
        }
    }
}
