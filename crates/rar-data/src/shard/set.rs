//! A finished pretokenization run opened for reading: [`ShardSet`].

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use burn_dataset::Dataset;

use crate::error::{DataError, Result};
use crate::order::StorageUnit;
use crate::record::{RecordSpec, TokenRecord};
use crate::shard::format::{SHARD_HEADER_LEN, ShardHeader};
use crate::shard::index::{INDEX_FILE, ShardIndex};
use crate::source::TokenData;

/// Largest piece (in 16-bit words) read at once: bounds the scratch buffer to 1 MiB.
const READ_BLOCK_WORDS: usize = 1 << 19;

/// A validated shard of the run.
#[derive(Debug)]
struct ShardInfo {
    path: PathBuf,
    header: ShardHeader,
    /// Global index of its first record.
    first: u64,
}

/// The shards of a finished pretokenization run: random access to every record by global
/// index (shard after shard, as the index lists them), bulk reads for a
/// [`SampleStream`](crate::SampleStream), and a full checksum pass.
///
/// [`Self::open`] reads only `index.json` and the 40-byte header and length of every shard:
/// a missing shard, a truncated or oversized file, a bad magic / version, or a header that
/// disagrees with the index (record count, tokens per record, codebook size, crops per image)
/// is an error naming the file and the values. Token data is checked as it is read (labels
/// against the class count, tokens against the codebook size, the CRC-32 when a whole shard
/// is read at once); [`Self::verify_checksums`] checks everything in one streaming pass.
#[derive(Debug)]
pub struct ShardSet {
    dir: PathBuf,
    index: ShardIndex,
    shards: Vec<ShardInfo>,
    len: u64,
    bytes_read: AtomicU64,
    files_opened: AtomicU64,
}

fn invalid(path: &Path, message: String) -> DataError {
    DataError::shard(path, message)
}

/// Turns a failed read into a truncation error when the file got shorter than its header
/// says, into an I/O error naming the file otherwise.
fn read_error(file: &File, path: &Path, header: &ShardHeader, e: std::io::Error) -> DataError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        let found = file.metadata().map(|m| m.len()).unwrap_or(0);
        return DataError::TruncatedShard {
            path: path.to_path_buf(),
            expected: header.file_len(),
            found,
        };
    }
    DataError::io(path, e)
}

/// Reads `dest.len()` little-endian words at byte `offset`, in pieces of at most 1 MiB,
/// feeding the raw bytes to `crc` if given. Returns the bytes read.
fn read_words(
    file: &mut File,
    path: &Path,
    header: &ShardHeader,
    offset: u64,
    dest: &mut [u16],
    scratch: &mut Vec<u8>,
    mut crc: Option<&mut crc32fast::Hasher>,
) -> Result<u64> {
    if dest.is_empty() {
        return Ok(0);
    }
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| DataError::io(path, e))?;
    for piece in dest.chunks_mut(READ_BLOCK_WORDS) {
        scratch.resize(2 * piece.len(), 0);
        file.read_exact(scratch)
            .map_err(|e| read_error(file, path, header, e))?;
        if let Some(h) = crc.as_deref_mut() {
            h.update(scratch);
        }
        for (d, c) in piece.iter_mut().zip(scratch.chunks_exact(2)) {
            *d = u16::from_le_bytes([c[0], c[1]]);
        }
    }
    Ok(2 * dest.len() as u64)
}

impl ShardSet {
    /// Opens the finished run in `dir` (see the type docs for what is validated).
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let index = ShardIndex::read(dir)?;
        let index_path = dir.join(INDEX_FILE);
        if !index.is_complete() {
            return Err(invalid(
                &index_path,
                format!(
                    "pretokenization is unfinished: {} of {} shards done (rerun it to resume)",
                    index.shards.len(),
                    index.num_shards()
                ),
            ));
        }
        let mut seen = HashSet::new();
        let mut shards = Vec::with_capacity(index.shards.len());
        let mut first = 0u64;
        for (k, entry) in index.shards.iter().enumerate() {
            let mut components = Path::new(&entry.file).components();
            let plain = matches!(
                (components.next(), components.next()),
                (Some(Component::Normal(_)), None)
            );
            if !plain {
                return Err(invalid(
                    &index_path,
                    format!(
                        "shard {k}: file {:?} is not a plain file name inside the directory",
                        entry.file
                    ),
                ));
            }
            if !seen.insert(entry.file.as_str()) {
                return Err(invalid(
                    &index_path,
                    format!("shard {k}: file {:?} is listed twice", entry.file),
                ));
            }
            let path = dir.join(&entry.file);
            let header = match ShardHeader::read(&path) {
                Ok(h) => h,
                Err(DataError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    return Err(invalid(
                        &path,
                        format!(
                            "missing: {INDEX_FILE} lists it as shard {k} but it does not exist"
                        ),
                    ));
                }
                Err(e) => return Err(e),
            };
            let mismatch = |what: &str, found: u64, expected: u64| {
                invalid(
                    &path,
                    format!("header has {found} {what}, the index says {expected}"),
                )
            };
            for (what, found, expected) in [
                (
                    "tokens per record",
                    header.tokens_per_record,
                    index.tokens_per_record,
                ),
                (
                    "as codebook size",
                    header.codebook_size,
                    index.codebook_size,
                ),
                (
                    "crops per image",
                    header.crops_per_image,
                    index.crops_per_image,
                ),
            ] {
                if found != expected {
                    return Err(mismatch(what, found.into(), expected.into()));
                }
            }
            if header.count != entry.num_records {
                return Err(mismatch("records", header.count, entry.num_records));
            }
            shards.push(ShardInfo {
                path,
                header,
                first,
            });
            first += header.count;
        }
        if first == 0 {
            return Err(invalid(&index_path, "the run has no records".into()));
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            index,
            shards,
            len: first,
            bytes_read: AtomicU64::new(0),
            files_opened: AtomicU64::new(0),
        })
    }

    /// The run's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The run's index.
    pub fn index(&self) -> &ShardIndex {
        &self.index
    }

    /// Number of shards.
    pub fn num_shards(&self) -> usize {
        self.shards.len()
    }

    /// Path of shard `k` (its position in the index).
    pub fn shard_path(&self, k: usize) -> Option<&Path> {
        self.shards.get(k).map(|s| s.path.as_path())
    }

    /// Number of records of shard `k`.
    pub fn shard_len(&self, k: usize) -> Option<u64> {
        self.shards.get(k).map(|s| s.header.count)
    }

    /// Bytes of shard data read so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::Relaxed)
    }

    /// Shard files opened so far for reading records.
    pub fn files_opened(&self) -> u64 {
        self.files_opened.load(Ordering::Relaxed)
    }

    /// The shard holding global record `index`, and the record's position in it.
    fn locate(&self, index: u64) -> Result<(&ShardInfo, u64)> {
        let k = self.shards.partition_point(|s| s.first <= index);
        match k.checked_sub(1).map(|k| &self.shards[k]) {
            Some(s) if index < s.first + s.header.count => Ok((s, index - s.first)),
            _ => Err(DataError::input(
                "record index",
                format!("{index} of {} records in {}", self.len, self.dir.display()),
            )),
        }
    }

    /// Reads `labels.len()` records of `info` from `record` on, checking their ranges, and the
    /// CRC-32 when that is the whole shard.
    fn read_records(
        &self,
        info: &ShardInfo,
        record: u64,
        labels: &mut [u16],
        tokens: &mut [u16],
    ) -> Result<()> {
        let (path, h) = (&info.path, &info.header);
        let n = h.tokens_per_record as u64;
        let count = labels.len() as u64;
        if record + count > h.count {
            return Err(DataError::input(
                "record range",
                format!(
                    "records {record}..{} of {} in {}",
                    record + count,
                    h.count,
                    path.display()
                ),
            ));
        }
        let mut file = File::open(path).map_err(|e| DataError::io(path, e))?;
        self.files_opened.fetch_add(1, Ordering::Relaxed);
        let mut scratch = Vec::new();
        let mut crc = (record == 0 && count == h.count).then(crc32fast::Hasher::new);
        let mut bytes = read_words(
            &mut file,
            path,
            h,
            SHARD_HEADER_LEN + 2 * record,
            labels,
            &mut scratch,
            crc.as_mut(),
        )?;
        bytes += read_words(
            &mut file,
            path,
            h,
            SHARD_HEADER_LEN + 2 * h.count + 2 * n * record,
            tokens,
            &mut scratch,
            crc.as_mut(),
        )?;
        self.bytes_read.fetch_add(bytes, Ordering::Relaxed);
        if let Some(crc) = crc {
            check_crc(path, h, crc.finalize())?;
        }
        self.check_records(path, record, labels, tokens)
    }

    /// Checks labels and tokens of consecutive records from `first` on (either may be empty).
    fn check_records(&self, path: &Path, first: u64, labels: &[u16], tokens: &[u16]) -> Result<()> {
        let spec = self.spec();
        let n = spec.tokens_per_record;
        let at = |i: usize, reason: String| {
            invalid(path, format!("record {}: {reason}", first + i as u64))
        };
        for (i, &l) in labels.iter().enumerate() {
            spec.check_label(l).map_err(|r| at(i, r))?;
        }
        for (i, t) in tokens.chunks(n).enumerate() {
            spec.check_token_ids(t).map_err(|r| at(i, r))?;
        }
        Ok(())
    }

    /// Streams every shard once (1 MiB buffer) and checks its CRC-32, labels and tokens:
    /// everything [`Shard::read`](crate::shard::Shard::read) checks, without holding a shard in memory.
    pub fn verify_checksums(&self) -> Result<()> {
        let n = self.spec().tokens_per_record;
        // Whole records per piece, so a token piece starts at a record boundary.
        let per_piece = (READ_BLOCK_WORDS / n).max(1);
        let mut words = vec![0u16; per_piece * n];
        let mut scratch = Vec::new();
        for info in &self.shards {
            let (path, h) = (&info.path, &info.header);
            let mut file = File::open(path).map_err(|e| DataError::io(path, e))?;
            let mut crc = crc32fast::Hasher::new();
            let mut bytes = 0;
            for tokens_part in [false, true] {
                let mut first = 0u64;
                while first < h.count {
                    let m = (per_piece as u64).min(h.count - first) as usize;
                    let (offset, piece) = if tokens_part {
                        let at = SHARD_HEADER_LEN + 2 * h.count + 2 * (n as u64) * first;
                        (at, &mut words[..m * n])
                    } else {
                        (SHARD_HEADER_LEN + 2 * first, &mut words[..m])
                    };
                    bytes += read_words(
                        &mut file,
                        path,
                        h,
                        offset,
                        piece,
                        &mut scratch,
                        Some(&mut crc),
                    )?;
                    if tokens_part {
                        self.check_records(path, first, &[], piece)?;
                    } else {
                        self.check_records(path, first, piece, &[])?;
                    }
                    first += m as u64;
                }
            }
            self.bytes_read.fetch_add(bytes, Ordering::Relaxed);
            check_crc(path, h, crc.finalize())?;
        }
        Ok(())
    }
}

fn check_crc(path: &Path, h: &ShardHeader, crc: u32) -> Result<()> {
    if crc != h.crc32 {
        return Err(invalid(
            path,
            format!(
                "checksum mismatch (header {:#010x}, data {crc:#010x}): the file is corrupt",
                h.crc32
            ),
        ));
    }
    Ok(())
}

impl Dataset<TokenRecord, DataError> for ShardSet {
    /// Record `index` (shard after shard), reading only that record (`2 + 2·N` bytes). Its
    /// label and tokens are range-checked; its shard's checksum is not (see
    /// [`ShardSet::verify_checksums`]).
    fn get(&self, index: usize) -> Result<TokenRecord> {
        let (info, record) = self.locate(index as u64)?;
        let mut label = [0u16];
        let mut tokens = vec![0u16; info.header.tokens_per_record as usize];
        self.read_records(info, record, &mut label, &mut tokens)?;
        Ok(TokenRecord {
            class: label[0],
            tokens,
        })
    }

    fn len(&self) -> usize {
        self.len as usize
    }
}

impl TokenData for ShardSet {
    fn spec(&self) -> RecordSpec {
        RecordSpec {
            tokens_per_record: self.index.tokens_per_record as usize,
            codebook_size: self.index.codebook_size as usize,
            num_classes: self.index.classes.len(),
        }
    }

    fn describe(&self) -> String {
        format!("the token shards in {}", self.dir.display())
    }

    fn identity(&self) -> String {
        format!(
            "{} records in {} shards, images fingerprint {}",
            self.len,
            self.shards.len(),
            self.index.images_fingerprint
        )
    }

    /// One unit per shard; chunks keep the crops of an image together.
    fn units(&self) -> Vec<StorageUnit> {
        self.shards
            .iter()
            .map(|s| StorageUnit {
                records: s.header.count,
                granule: u64::from(s.header.crops_per_image),
            })
            .collect()
    }

    /// Two contiguous reads (labels, tokens) of one shard; the CRC-32 is checked when the run
    /// is the whole shard.
    fn read_run(&self, start: u64, labels: &mut [u16], tokens: &mut [u16]) -> Result<()> {
        let (info, record) = self.locate(start)?;
        self.read_records(info, record, labels, tokens)
    }
}
