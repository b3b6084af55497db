//! Shared pieces of rar-data's integration tests: tiny hand-written shard sets.
#![allow(dead_code)] // each test binary uses a part

use std::path::Path;

use rar_data::shard::{INDEX_FILE, INDEX_VERSION, Shard, ShardEntry, ShardIndex, shard_file_name};

/// Tokens per record.
pub const N: u32 = 4;
/// Codebook size.
pub const V: u32 = 1024;
/// Classes.
pub const CLASSES: usize = 5;

/// Record `r` of shard `s`: a label, and tokens naming `(s, r)`.
pub fn record(s: usize, r: usize) -> (u16, [u16; N as usize]) {
    let label = ((s * 3 + r / 2) % CLASSES) as u16;
    (
        label,
        [s as u16, r as u16, ((s * 31 + r) % V as usize) as u16, 7],
    )
}

/// Writes shards with `counts[s]` records each and a complete `index.json`.
pub fn write_set(dir: &Path, counts: &[usize]) {
    let mut entries = Vec::new();
    for (s, &count) in counts.iter().enumerate() {
        let (labels, tokens): (Vec<u16>, Vec<[u16; N as usize]>) =
            (0..count).map(|r| record(s, r)).unzip();
        let tokens = tokens.into_iter().flatten().collect();
        let file = shard_file_name(s);
        Shard::new(N, V, 1, labels, tokens)
            .unwrap()
            .write(dir.join(&file))
            .unwrap();
        entries.push(ShardEntry {
            file,
            first_image: s,
            num_images: 1,
            num_records: count as u64,
            skipped: Vec::new(),
        });
    }
    let index = ShardIndex {
        version: INDEX_VERSION,
        tokens_per_record: N,
        codebook_size: V,
        crop_mode: "center-flip".into(),
        crops_per_image: 1,
        image_size: 64,
        classes: (0..CLASSES).map(|c| format!("n{c:08}")).collect(),
        num_images: counts.len(),
        images_fingerprint: "0".into(),
        images_per_shard: 1,
        shards: entries,
    };
    std::fs::write(dir.join(INDEX_FILE), serde_json::to_string(&index).unwrap()).unwrap();
}

/// Shard sizes of the default set: uneven, with an empty shard.
pub const COUNTS: [usize; 7] = [5, 0, 7, 3, 9, 4, 6];

pub fn set() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_set(dir.path(), &COUNTS);
    dir
}
