//! Streaming, resumable writer for the ADM evaluator's sample file: an `.npz` holding one
//! uint8 array `arr_0` of shape `[N, H, W, 3]` (the official `sample_imagenet_rar.py`).
//!
//! The 50 000-image evaluation set is ~9.8 GB, so the file is written image by image and never
//! held in memory. Layout (what `numpy.load` expects from `numpy.savez`):
//!
//! * a zip archive with a single **stored** (uncompressed) member `arr_0.npy`, using zip64
//!   sizes and offsets so members over 4 GiB work;
//! * the member is an NPY v1.0 file: magic, a header dict
//!   `{'descr': '|u1', 'fortran_order': False, 'shape': (N, H, W, 3), }` padded to a
//!   64-byte boundary, then the raw bytes in C order.
//!
//! Because the member size is known up front, the local header is written first with its
//! final sizes and a CRC placeholder; [`NpzWriter::finish`] patches the CRC, appends the
//! central directory and zip64 end records, and atomically renames `<path>.partial` to
//! `<path>`. An interrupted run leaves `<path>.partial`; [`NpzWriter::create_or_resume`]
//! reopens it, drops a torn trailing image, recomputes the CRC of what is there, and reports how
//! many images are already written so the caller can continue from the next one.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Errors of the `.npz` writer (each names the file).
#[derive(Debug, thiserror::Error)]
pub enum NpzError {
    /// An I/O failure on `path`.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A `.partial` file exists but was written for a different array shape or is not ours.
    #[error("{path}: cannot resume: {reason}")]
    Incompatible {
        /// The file.
        path: PathBuf,
        /// Why it cannot be resumed.
        reason: String,
    },
    /// An image of the wrong size was pushed, or more images than the shape holds.
    #[error("{path}: {reason}")]
    BadImage {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
}

type Result<T> = std::result::Result<T, NpzError>;

const MEMBER_NAME: &[u8] = b"arr_0.npy";
const LOCAL_HEADER_LEN: u64 = 30 + MEMBER_NAME.len() as u64 + 20;
const CRC_OFFSET: u64 = 14;
/// MS-DOS date/time of 1980-01-01 00:00 (the zip epoch): a fixed stamp keeps files reproducible.
const DOS_TIME: u16 = 0;
const DOS_DATE: u16 = (1 << 5) | 1;

/// Writes `[N, H, W, 3]` uint8 images into an `.npz` one image at a time.
pub struct NpzWriter {
    final_path: PathBuf,
    partial_path: PathBuf,
    out: BufWriter<File>,
    crc: crc32fast::Hasher,
    shape: [usize; 4],
    written: usize,
    data_start: u64,
}

impl NpzWriter {
    /// Starts `<path>.partial` for `shape` = `[N, H, W, C]`, or resumes it if it exists with
    /// the same shape. Returns the writer; [`Self::images_written`] tells where to continue.
    pub fn create_or_resume(path: impl AsRef<Path>, shape: [usize; 4]) -> Result<Self> {
        let final_path = path.as_ref().to_path_buf();
        let mut partial = final_path.clone().into_os_string();
        partial.push(".partial");
        let partial_path = PathBuf::from(partial);
        let io_err = |source| NpzError::Io {
            path: partial_path.clone(),
            source,
        };
        if shape.contains(&0) {
            return Err(NpzError::BadImage {
                path: final_path,
                reason: format!("array shape {shape:?} has a zero dimension"),
            });
        }
        let header = npy_header(&shape);
        let data_start = LOCAL_HEADER_LEN + header.len() as u64;
        let image_bytes = (shape[1] * shape[2] * shape[3]) as u64;
        let member_len = header.len() as u64 + shape[0] as u64 * image_bytes;

        let mut expected_prefix = local_header(member_len);
        expected_prefix.extend_from_slice(&header);

        if partial_path.exists() {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&partial_path)
                .map_err(io_err)?;
            let mut prefix = vec![0u8; expected_prefix.len()];
            let len = file.metadata().map_err(io_err)?.len();
            if len < prefix.len() as u64 {
                // Torn before the headers were complete: start over.
                drop(file);
                std::fs::remove_file(&partial_path).map_err(io_err)?;
                return Self::create_or_resume(final_path, shape);
            }
            file.read_exact(&mut prefix).map_err(io_err)?;
            // The CRC field is a placeholder until finish; compare everything else.
            let mut masked = prefix.clone();
            masked[CRC_OFFSET as usize..CRC_OFFSET as usize + 4].fill(0);
            if masked != expected_prefix {
                return Err(NpzError::Incompatible {
                    path: partial_path,
                    reason: format!(
                        "it was not started by this writer for shape {shape:?} (delete it to start over)"
                    ),
                });
            }
            let complete = ((len - data_start) / image_bytes).min(shape[0] as u64);
            let keep = data_start + complete * image_bytes;
            file.set_len(keep).map_err(io_err)?;
            // Recompute the CRC of everything already in the member (npy header + images).
            let mut crc = crc32fast::Hasher::new();
            file.seek(SeekFrom::Start(LOCAL_HEADER_LEN))
                .map_err(io_err)?;
            let mut remaining = keep - LOCAL_HEADER_LEN;
            let mut buf = vec![0u8; 1 << 20];
            while remaining > 0 {
                let n = remaining.min(buf.len() as u64) as usize;
                file.read_exact(&mut buf[..n]).map_err(io_err)?;
                crc.update(&buf[..n]);
                remaining -= n as u64;
            }
            file.seek(SeekFrom::Start(keep)).map_err(io_err)?;
            return Ok(Self {
                final_path,
                partial_path,
                out: BufWriter::with_capacity(1 << 20, file),
                crc,
                shape,
                written: complete as usize,
                data_start,
            });
        }

        let file = File::create(&partial_path).map_err(io_err)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(&expected_prefix).map_err(io_err)?;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&header);
        Ok(Self {
            final_path,
            partial_path,
            out,
            crc,
            shape,
            written: 0,
            data_start,
        })
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

    /// Flushes written images to disk (call periodically so an interruption loses little).
    pub fn flush(&mut self) -> Result<()> {
        self.out
            .flush()
            .and_then(|()| self.out.get_ref().sync_data())
            .map_err(|source| NpzError::Io {
                path: self.partial_path.clone(),
                source,
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
        Ok(self.final_path)
    }
}

/// NPY v1.0 header for a C-order uint8 array, padded so the data starts 64-byte aligned.
fn npy_header(shape: &[usize; 4]) -> Vec<u8> {
    let dict = format!(
        "{{'descr': '|u1', 'fortran_order': False, 'shape': ({}, {}, {}, {}), }}",
        shape[0], shape[1], shape[2], shape[3]
    );
    let unpadded = 10 + dict.len() + 1;
    let total = unpadded.div_ceil(64) * 64;
    let mut h = Vec::with_capacity(total);
    h.extend_from_slice(b"\x93NUMPY\x01\x00");
    h.extend_from_slice(&((total - 10) as u16).to_le_bytes());
    h.extend_from_slice(dict.as_bytes());
    h.resize(total - 1, b' ');
    h.push(b'\n');
    h
}

/// Zip local file header for the stored member, zip64 sizes in the extra field, CRC 0.
fn local_header(member_len: u64) -> Vec<u8> {
    let mut h = Vec::with_capacity(LOCAL_HEADER_LEN as usize);
    h.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
    h.extend_from_slice(&45u16.to_le_bytes()); // version needed: zip64
    h.extend_from_slice(&0u16.to_le_bytes()); // flags
    h.extend_from_slice(&0u16.to_le_bytes()); // stored
    h.extend_from_slice(&DOS_TIME.to_le_bytes());
    h.extend_from_slice(&DOS_DATE.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes()); // CRC placeholder, patched by finish()
    h.extend_from_slice(&u32::MAX.to_le_bytes()); // compressed size → zip64 extra
    h.extend_from_slice(&u32::MAX.to_le_bytes()); // uncompressed size → zip64 extra
    h.extend_from_slice(&(MEMBER_NAME.len() as u16).to_le_bytes());
    h.extend_from_slice(&20u16.to_le_bytes()); // extra length
    h.extend_from_slice(MEMBER_NAME);
    h.extend_from_slice(&1u16.to_le_bytes()); // zip64 extended information
    h.extend_from_slice(&16u16.to_le_bytes());
    h.extend_from_slice(&member_len.to_le_bytes()); // uncompressed
    h.extend_from_slice(&member_len.to_le_bytes()); // compressed (stored)
    h
}

/// The central directory entry of the member (local header at offset 0).
fn central_directory(crc: u32, member_len: u64) -> Vec<u8> {
    let mut c = Vec::new();
    c.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
    c.extend_from_slice(&45u16.to_le_bytes()); // made by
    c.extend_from_slice(&45u16.to_le_bytes()); // needed
    c.extend_from_slice(&0u16.to_le_bytes()); // flags
    c.extend_from_slice(&0u16.to_le_bytes()); // stored
    c.extend_from_slice(&DOS_TIME.to_le_bytes());
    c.extend_from_slice(&DOS_DATE.to_le_bytes());
    c.extend_from_slice(&crc.to_le_bytes());
    c.extend_from_slice(&u32::MAX.to_le_bytes());
    c.extend_from_slice(&u32::MAX.to_le_bytes());
    c.extend_from_slice(&(MEMBER_NAME.len() as u16).to_le_bytes());
    c.extend_from_slice(&20u16.to_le_bytes()); // extra length
    c.extend_from_slice(&0u16.to_le_bytes()); // comment length
    c.extend_from_slice(&0u16.to_le_bytes()); // disk number start
    c.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
    c.extend_from_slice(&0u32.to_le_bytes()); // external attributes
    c.extend_from_slice(&0u32.to_le_bytes()); // local header offset
    c.extend_from_slice(MEMBER_NAME);
    c.extend_from_slice(&1u16.to_le_bytes());
    c.extend_from_slice(&16u16.to_le_bytes());
    c.extend_from_slice(&member_len.to_le_bytes());
    c.extend_from_slice(&member_len.to_le_bytes());
    c
}

/// Zip64 end of central directory record, its locator, and the classic end record.
fn end_records(cd_offset: u64, cd_len: u64) -> Vec<u8> {
    let zip64_eocd_offset = cd_offset + cd_len;
    let mut e = Vec::new();
    e.extend_from_slice(&0x0606_4b50u32.to_le_bytes());
    e.extend_from_slice(&44u64.to_le_bytes()); // size of the rest of the record
    e.extend_from_slice(&45u16.to_le_bytes());
    e.extend_from_slice(&45u16.to_le_bytes());
    e.extend_from_slice(&0u32.to_le_bytes()); // this disk
    e.extend_from_slice(&0u32.to_le_bytes()); // disk with the central directory
    e.extend_from_slice(&1u64.to_le_bytes()); // entries on this disk
    e.extend_from_slice(&1u64.to_le_bytes()); // entries in total
    e.extend_from_slice(&cd_len.to_le_bytes());
    e.extend_from_slice(&cd_offset.to_le_bytes());
    e.extend_from_slice(&0x0706_4b50u32.to_le_bytes()); // locator
    e.extend_from_slice(&0u32.to_le_bytes());
    e.extend_from_slice(&zip64_eocd_offset.to_le_bytes());
    e.extend_from_slice(&1u32.to_le_bytes());
    e.extend_from_slice(&0x0605_4b50u32.to_le_bytes()); // classic end record
    e.extend_from_slice(&0u16.to_le_bytes());
    e.extend_from_slice(&0u16.to_le_bytes());
    e.extend_from_slice(&1u16.to_le_bytes());
    e.extend_from_slice(&1u16.to_le_bytes());
    e.extend_from_slice(&(cd_len.min(u32::MAX as u64) as u32).to_le_bytes());
    e.extend_from_slice(&(cd_offset.min(u32::MAX as u64) as u32).to_le_bytes());
    e.extend_from_slice(&0u16.to_le_bytes()); // comment length
    e
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
        let dir = std::env::temp_dir().join(format!("npz-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("samples.npz");
        let shape = [5, 4, 3, 3];
        let bytes = 4 * 3 * 3;
        let mut w = NpzWriter::create_or_resume(&path, shape).unwrap();
        for i in 0..3 {
            w.push(&image(i, bytes)).unwrap();
        }
        w.flush().unwrap();
        assert!(w.push(&[0; 5]).is_err());
        drop(w);
        // simulate a torn write: half an image at the end
        let partial = dir.join("samples.npz.partial");
        let mut f = OpenOptions::new().append(true).open(&partial).unwrap();
        f.write_all(&image(3, bytes)[..10]).unwrap();
        drop(f);
        let mut w = NpzWriter::create_or_resume(&path, shape).unwrap();
        assert_eq!(w.images_written(), 3);
        assert!(NpzWriter::create_or_resume(&path, [6, 4, 3, 3]).is_err());
        for i in 3..5 {
            w.push(&image(i, bytes)).unwrap();
        }
        assert!(w.push(&image(5, bytes)).is_err());
        let done = w.finish().unwrap();
        assert!(!partial.exists());
        let (header, data) = read_back(&done);
        assert!(header.contains("'shape': (5, 4, 3, 3)"), "{header}");
        assert!(header.contains("'descr': '|u1'"));
        let expected: Vec<u8> = (0..5).flat_map(|i| image(i, bytes)).collect();
        assert_eq!(data, expected);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
