//! The token shard format written by the pretokenizer and read by training.
//!
//! A shard holds `count` records; a record is one crop of one image: its class label and its
//! `N` token ids (row-major over the token grid). All integers are little-endian.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `b"RARVQTOK"` |
//! | 8 | 4 | format version (`u32`, currently 1) |
//! | 12 | 4 | `N`, tokens per record (`u32`, 256 for the official tokenizer) |
//! | 16 | 4 | codebook size `V` (`u32`, ≤ 65 536; every token is `< V`) |
//! | 20 | 4 | crops per image (`u32`: 10 for ten-crop, 2 for centre + flip) |
//! | 24 | 8 | `count`, number of records (`u64`) |
//! | 32 | 4 | CRC-32 (IEEE) of everything after the header |
//! | 36 | 4 | reserved, 0 |
//! | 40 | 2·count | labels, `u16` each |
//! | 40 + 2·count | 2·N·count | tokens, `u16` each, record after record |
//!
//! The file length is therefore exactly `40 + 2·count·(1 + N)`; a shorter file is reported
//! as truncated before anything else is read. Records of one image are consecutive, in crop
//! order (see [`crate::CropMode`]). Shards are written to a temporary name and
//! renamed into place, so a shard that exists under its final name is complete.

use std::path::Path;

use crate::atomic::write_atomic;
use crate::error::{DataError, Result};
use crate::record::RecordSpec;

/// The 8 bytes every shard starts with.
pub const SHARD_MAGIC: [u8; 8] = *b"RARVQTOK";
/// The format version this crate writes and reads.
pub const SHARD_VERSION: u32 = 1;
/// Header length in bytes.
pub const SHARD_HEADER_LEN: u64 = 40;

/// A shard's header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardHeader {
    /// Tokens per record (`N`).
    pub tokens_per_record: u32,
    /// Codebook size (`V`); every token is below it.
    pub codebook_size: u32,
    /// Records per source image (10 or 2).
    pub crops_per_image: u32,
    /// Number of records.
    pub count: u64,
    /// CRC-32 of the payload.
    pub crc32: u32,
}

impl ShardHeader {
    /// Total file length this header implies.
    pub fn file_len(&self) -> u64 {
        SHARD_HEADER_LEN + 2 * self.count * (1 + u64::from(self.tokens_per_record))
    }

    fn to_bytes(self) -> [u8; SHARD_HEADER_LEN as usize] {
        let mut b = [0u8; SHARD_HEADER_LEN as usize];
        b[0..8].copy_from_slice(&SHARD_MAGIC);
        b[8..12].copy_from_slice(&SHARD_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&self.tokens_per_record.to_le_bytes());
        b[16..20].copy_from_slice(&self.codebook_size.to_le_bytes());
        b[20..24].copy_from_slice(&self.crops_per_image.to_le_bytes());
        b[24..32].copy_from_slice(&self.count.to_le_bytes());
        b[32..36].copy_from_slice(&self.crc32.to_le_bytes());
        b
    }

    /// Parses and validates a header (magic, version, field ranges) against the file length.
    pub fn parse(bytes: &[u8], file_len: u64, path: &Path) -> Result<Self> {
        let invalid = |message: String| DataError::InvalidShard {
            path: path.to_path_buf(),
            message,
        };
        if bytes.len() < SHARD_HEADER_LEN as usize {
            return Err(DataError::TruncatedShard {
                path: path.to_path_buf(),
                expected: SHARD_HEADER_LEN,
                found: file_len,
            });
        }
        if bytes[0..8] != SHARD_MAGIC {
            return Err(invalid(format!(
                "bad magic {:?} (expected {:?}): not a token shard",
                String::from_utf8_lossy(&bytes[0..8]),
                String::from_utf8_lossy(&SHARD_MAGIC)
            )));
        }
        let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().expect("4 bytes"));
        let version = u32_at(8);
        if version != SHARD_VERSION {
            return Err(invalid(format!(
                "format version {version}, this reader understands {SHARD_VERSION}"
            )));
        }
        let header = Self {
            tokens_per_record: u32_at(12),
            codebook_size: u32_at(16),
            crops_per_image: u32_at(20),
            count: u64::from_le_bytes(bytes[24..32].try_into().expect("8 bytes")),
            crc32: u32_at(32),
        };
        if bytes[36..40] != [0; 4] {
            return Err(invalid(format!(
                "reserved header bytes are {:?}, not zero",
                &bytes[36..40]
            )));
        }
        if header.tokens_per_record == 0 {
            return Err(invalid("tokens per record is 0".into()));
        }
        if header.codebook_size == 0 || header.codebook_size > 1 << 16 {
            return Err(invalid(format!(
                "codebook size {} is outside 1..=65536",
                header.codebook_size
            )));
        }
        if header.crops_per_image == 0 {
            return Err(invalid("crops per image is 0".into()));
        }
        let expected = header
            .count
            .checked_mul(2 * (1 + u64::from(header.tokens_per_record)))
            .and_then(|p| p.checked_add(SHARD_HEADER_LEN))
            .ok_or_else(|| invalid(format!("record count {} overflows", header.count)))?;
        if file_len < expected {
            return Err(DataError::TruncatedShard {
                path: path.to_path_buf(),
                expected,
                found: file_len,
            });
        }
        if file_len > expected {
            return Err(invalid(format!(
                "file has {file_len} bytes, {} more than the header's {expected}",
                file_len - expected
            )));
        }
        Ok(header)
    }

    /// Reads and validates only the header (and the file length) of a shard.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        use std::io::Read;
        let path = path.as_ref();
        let mut file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
        let len = file.metadata().map_err(|e| DataError::io(path, e))?.len();
        let mut buf = Vec::with_capacity(SHARD_HEADER_LEN as usize);
        (&mut file)
            .take(SHARD_HEADER_LEN)
            .read_to_end(&mut buf)
            .map_err(|e| DataError::io(path, e))?;
        Self::parse(&buf, len, path)
    }
}

/// An in-memory shard: labels and tokens of every record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    /// The header (as read or as it will be written).
    pub header: ShardHeader,
    /// One label per record.
    pub labels: Vec<u16>,
    /// `count × N` tokens, record after record.
    pub tokens: Vec<u16>,
}

impl Shard {
    /// Builds a shard from records, checking lengths and token ranges.
    pub fn new(
        tokens_per_record: u32,
        codebook_size: u32,
        crops_per_image: u32,
        labels: Vec<u16>,
        tokens: Vec<u16>,
    ) -> Result<Self> {
        if tokens_per_record == 0 || tokens.len() != labels.len() * tokens_per_record as usize {
            return Err(DataError::input(
                "shard records",
                format!(
                    "{} tokens for {} records of {tokens_per_record}",
                    tokens.len(),
                    labels.len()
                ),
            ));
        }
        if codebook_size == 0 || codebook_size > 1 << 16 {
            return Err(DataError::input(
                "codebook_size",
                format!("{codebook_size} is outside 1..=65536 (tokens are stored as u16)"),
            ));
        }
        let spec = RecordSpec {
            tokens_per_record: tokens_per_record as usize,
            codebook_size: codebook_size as usize,
            num_classes: usize::MAX,
        };
        spec.check_token_ids(&tokens)
            .map_err(|reason| DataError::input("shard records", reason))?;
        let mut shard = Self {
            header: ShardHeader {
                tokens_per_record,
                codebook_size,
                crops_per_image,
                count: labels.len() as u64,
                crc32: 0,
            },
            labels,
            tokens,
        };
        shard.header.crc32 = shard.payload_crc();
        Ok(shard)
    }

    fn payload_crc(&self) -> u32 {
        let mut h = crc32fast::Hasher::new();
        for l in &self.labels {
            h.update(&l.to_le_bytes());
        }
        for t in &self.tokens {
            h.update(&t.to_le_bytes());
        }
        h.finalize()
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the shard has no records.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Label and tokens of record `i`.
    pub fn record(&self, i: usize) -> Option<(u16, &[u16])> {
        let n = self.header.tokens_per_record as usize;
        let label = *self.labels.get(i)?;
        Some((label, &self.tokens[i * n..(i + 1) * n]))
    }

    /// Writes the shard to `path` atomically (temporary file, fsync, rename).
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let mut bytes = Vec::with_capacity(self.header.file_len() as usize);
        bytes.extend_from_slice(&self.header.to_bytes());
        for l in &self.labels {
            bytes.extend_from_slice(&l.to_le_bytes());
        }
        for t in &self.tokens {
            bytes.extend_from_slice(&t.to_le_bytes());
        }
        write_atomic(path, &bytes)
    }

    /// Reads a shard, validating the header, the length, the checksum and the token range.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
        let header = ShardHeader::parse(&bytes, bytes.len() as u64, path)?;
        let count = header.count as usize;
        let n = header.tokens_per_record as usize;
        let body = &bytes[SHARD_HEADER_LEN as usize..];
        let crc = crc32fast::hash(body);
        if crc != header.crc32 {
            return Err(DataError::InvalidShard {
                path: path.to_path_buf(),
                message: format!(
                    "checksum mismatch (header {:#010x}, data {crc:#010x}): the file is corrupt",
                    header.crc32
                ),
            });
        }
        let words = |b: &[u8]| -> Vec<u16> {
            b.chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect()
        };
        let labels = words(&body[..2 * count]);
        let tokens = words(&body[2 * count..]);
        debug_assert_eq!(tokens.len(), count * n);
        let spec = RecordSpec {
            tokens_per_record: n,
            codebook_size: header.codebook_size as usize,
            num_classes: usize::MAX,
        };
        spec.check_token_ids(&tokens)
            .map_err(|reason| DataError::shard(path, reason))?;
        Ok(Self {
            header,
            labels,
            tokens,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Shard {
        Shard::new(4, 16, 2, vec![3, 3, 7], (0..12).map(|i| i % 16).collect()).unwrap()
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.rartok");
        let s = sample();
        s.write(&p).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().len(), s.header.file_len());
        assert_eq!(Shard::read(&p).unwrap(), s);
        assert_eq!(ShardHeader::read(&p).unwrap(), s.header);
        assert_eq!(s.record(2), Some((7, &[8u16, 9, 10, 11][..])));
        assert!(!crate::atomic::temporary_path(&p).exists());
    }

    #[test]
    fn truncation_corruption_and_bad_headers_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.rartok");
        sample().write(&p).unwrap();
        let bytes = std::fs::read(&p).unwrap();

        let q = dir.path().join("t.rartok");
        std::fs::write(&q, &bytes[..bytes.len() - 3]).unwrap();
        assert!(matches!(
            Shard::read(&q),
            Err(DataError::TruncatedShard { expected, found, .. })
                if expected == bytes.len() as u64 && found == bytes.len() as u64 - 3
        ));
        assert!(matches!(
            ShardHeader::read(&q),
            Err(DataError::TruncatedShard { .. })
        ));
        std::fs::write(&q, &bytes[..10]).unwrap();
        assert!(matches!(
            Shard::read(&q),
            Err(DataError::TruncatedShard { .. })
        ));

        let mut flipped = bytes.clone();
        *flipped.last_mut().unwrap() ^= 1;
        std::fs::write(&q, &flipped).unwrap();
        let err = Shard::read(&q).unwrap_err().to_string();
        assert!(err.contains("checksum"), "{err}");

        let mut magic = bytes.clone();
        magic[0] = b'X';
        std::fs::write(&q, &magic).unwrap();
        assert!(Shard::read(&q).unwrap_err().to_string().contains("magic"));

        let mut version = bytes.clone();
        version[8] = 9;
        std::fs::write(&q, &version).unwrap();
        assert!(Shard::read(&q).unwrap_err().to_string().contains("version"));

        let mut extra = bytes;
        extra.push(0);
        std::fs::write(&q, &extra).unwrap();
        assert!(matches!(
            Shard::read(&q),
            Err(DataError::InvalidShard { .. })
        ));
    }

    #[test]
    fn out_of_range_tokens_are_refused() {
        assert!(matches!(
            Shard::new(2, 4, 1, vec![0], vec![1, 4]),
            Err(DataError::InvalidInput { message, .. }) if message.contains("token 4")
        ));
        assert!(Shard::new(2, 4, 1, vec![0], vec![1]).is_err());
    }
}
