//! Token shards: the on-disk format of pretokenized data.
//!
//! * [`Shard`] / [`ShardHeader`] — one shard file: header, labels, tokens, CRC-32;
//! * [`ShardIndex`] — `index.json`, the settings and finished shards of a run;
//! * [`ShardSet`](crate::ShardSet) — a finished run opened for reading.

pub(crate) mod format;
pub(crate) mod index;
pub(crate) mod set;

pub use format::{SHARD_HEADER_LEN, SHARD_MAGIC, SHARD_VERSION, Shard, ShardHeader};
pub use index::{
    INDEX_FILE, INDEX_VERSION, SKIPPED_FILE, ShardEntry, ShardIndex, SkippedImage, shard_file_name,
};
