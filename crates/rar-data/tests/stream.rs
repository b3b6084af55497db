//! A `SampleStream` over a `ShardSet` on tiny hand-written shard sets: each epoch is a permutation of the records,
//! orders are seeded and reproducible, random access equals sequential reading (across epoch
//! boundaries and after resuming), the memory bound holds, every record is read once per
//! epoch, and broken runs are errors naming the file.

use std::collections::BTreeSet;
use std::path::Path;

mod common;

use burn_dataset::Dataset;
use common::*;
use rar_data::shard::{INDEX_FILE, Shard, ShardEntry, ShardIndex, shard_file_name};
use rar_data::{DataError, SampleStream, ShardSet, StreamConfig, TokenData};

type ShardStream = SampleStream<ShardSet>;

fn open(dir: &Path, seed: u64, k: usize, c: usize) -> ShardStream {
    let config = StreamConfig::new(seed)
        .with_window_units(k)
        .with_chunks_per_unit(c);
    SampleStream::new(ShardSet::open(dir).unwrap(), config).unwrap()
}

/// The global record index of record `r` of shard `s` (shard after shard).
fn global(s: usize, r: usize) -> usize {
    COUNTS[..s].iter().sum::<usize>() + r
}

/// `(shard, record)` of a global record index.
fn local(mut index: usize) -> (usize, usize) {
    for (s, &n) in COUNTS.iter().enumerate() {
        if index < n {
            return (s, index);
        }
        index -= n;
    }
    panic!("index beyond the set")
}

/// `(shard, record)` of each of `count` records read sequentially from `position`,
/// checking each against what was written.
fn read(stream: &ShardStream, position: u64, count: usize) -> Vec<(usize, usize)> {
    stream
        .cursor(position)
        .take(count)
        .map(|r| {
            let r = r.unwrap();
            let (label, tokens) = (r.class, r.tokens);
            let (s, i) = (tokens[0] as usize, tokens[1] as usize);
            let (l, t) = record(s, i);
            assert_eq!((label, tokens.as_slice()), (l, &t[..]));
            (s, i)
        })
        .collect()
}

fn all_records() -> BTreeSet<(usize, usize)> {
    COUNTS
        .iter()
        .enumerate()
        .flat_map(|(s, &n)| (0..n).map(move |r| (s, r)))
        .collect()
}

#[test]
fn metadata_matches_the_index() {
    let dir = set();
    let stream = open(dir.path(), 0, 2, 2);
    assert_eq!(stream.len(), 34);
    assert!(!stream.is_empty());
    let spec = stream.data().spec();
    assert_eq!(spec.tokens_per_record, N as usize);
    assert_eq!(spec.codebook_size, V as usize);
    assert_eq!(spec.num_classes, CLASSES);
    let set = stream.data();
    assert_eq!(set.num_shards(), 7);
    assert_eq!(stream.order().windows_per_epoch(), 4);
    assert_eq!(set.shard_len(4), Some(9));
    assert!(set.shard_path(4).unwrap().ends_with(shard_file_name(4)));
    assert_eq!(Dataset::len(set), 34);
}

#[test]
fn every_epoch_is_a_permutation() {
    let dir = set();
    let want = all_records();
    for (k, c) in [(1, 1), (2, 1), (3, 2), (2, 3), (7, 1), (100, 4)] {
        let stream = open(dir.path(), 11, k, c);
        let len = stream.len() as usize;
        let seq = read(&stream, 0, 3 * len);
        for e in 0..3 {
            let epoch = &seq[e * len..(e + 1) * len];
            let got: BTreeSet<_> = epoch.iter().copied().collect();
            assert_eq!(got.len(), len, "K {k} C {c} epoch {e}: a record repeats");
            assert_eq!(got, want, "K {k} C {c} epoch {e}");
        }
    }
}

#[test]
fn orders_are_seeded_reproducible_and_differ_by_epoch_and_seed() {
    let dir = set();
    let a = open(dir.path(), 5, 2, 2);
    let len = a.len() as usize;
    let seq = read(&a, 0, 2 * len);
    // The same seed in another instance: the same order.
    assert_eq!(read(&open(dir.path(), 5, 2, 2), 0, 2 * len), seq);
    // Epochs differ, seeds differ.
    assert_ne!(seq[..len], seq[len..]);
    let b = read(&open(dir.path(), 6, 2, 2), 0, len);
    assert_ne!(b, seq[..len]);
    // Shuffled within windows: not the file order.
    let file_order: Vec<_> = all_records().into_iter().collect();
    assert_ne!(seq[..len], file_order[..]);
    // A fixed seed gives a fixed order on every platform (rar-core's generator): pinned.
    assert_eq!(
        seq[..8],
        [
            (3, 2),
            (6, 5),
            (3, 1),
            (6, 4),
            (3, 0),
            (6, 3),
            (4, 3),
            (0, 3)
        ]
    );
}

#[test]
fn random_access_equals_sequential_reading_across_epochs() {
    let dir = set();
    for (k, c) in [(2, 1), (3, 2), (1, 3)] {
        let stream = open(dir.path(), 42, k, c);
        let len = stream.len();
        let seq = read(&stream, 0, 3 * len as usize);
        for p in 0..3 * len {
            let rec = stream.record_at(p).unwrap();
            let (s, r) = seq[p as usize];
            assert_eq!(
                (rec.tokens[0] as usize, rec.tokens[1] as usize),
                (s, r),
                "p {p}"
            );
            assert_eq!(rec.class, record(s, r).0);
            assert_eq!(local(stream.order().record_index(p) as usize), (s, r));
        }
        // Resuming: a cursor started anywhere (mid-window, at and across the epoch
        // boundary) continues the same sequence.
        for start in [1, len / 2, len - 1, len, len + 3] {
            let n = (2 * len - start) as usize;
            assert_eq!(
                read(&stream, start, n),
                seq[start as usize..start as usize + n],
                "start {start}"
            );
        }
        // Seeking an existing cursor backwards and forwards.
        let mut cursor = stream.cursor(0);
        cursor.seek(len + 2);
        let (_, t) = cursor.next_record().unwrap();
        assert_eq!((t[0] as usize, t[1] as usize), seq[len as usize + 2]);
        cursor.seek(3);
        let (_, t) = cursor.next_record().unwrap();
        assert_eq!((t[0] as usize, t[1] as usize), seq[3]);
        assert_eq!(cursor.position(), 4);
    }
}

#[test]
fn batches_match_single_records_and_positions_advance() {
    let dir = set();
    let stream = open(dir.path(), 3, 2, 2);
    let seq = read(&stream, 0, 50);
    let mut cursor = stream.cursor(0);
    let (mut labels, mut tokens) = (Vec::new(), Vec::new());
    cursor
        .next_batch_into(20, &mut labels, &mut tokens)
        .unwrap();
    cursor
        .next_batch_into(30, &mut labels, &mut tokens)
        .unwrap();
    assert_eq!(cursor.position(), 50);
    assert_eq!(labels.len(), 50);
    let got: Vec<_> = tokens
        .chunks(N as usize)
        .map(|t| (t[0] as usize, t[1] as usize))
        .collect();
    assert_eq!(got, seq);
}

#[test]
fn memory_is_bounded_and_each_record_is_read_once_per_epoch() {
    let dir = set();
    let body_bytes: u64 = COUNTS.iter().map(|&n| 2 * n as u64 * (1 + N as u64)).sum();
    let max = *COUNTS.iter().max().unwrap() as u64;
    for (k, c) in [(1, 1), (2, 1), (3, 1), (2, 2), (3, 4)] {
        let stream = open(dir.path(), 9, k, c);
        let len = stream.len();
        let bound = stream.order().memory_bound_records();
        assert!(bound <= (k as u64) * (max + c as u64));
        let before = stream.data().bytes_read();
        let mut cursor = stream.cursor(0);
        for _ in 0..2 * len {
            cursor.next_record().unwrap();
            let s = cursor.stats();
            assert!(s.resident_records <= bound);
            if c == 1 {
                assert!(s.resident_units <= k as u64, "K {k}: {s:?}");
            }
        }
        let s = cursor.stats();
        assert!(s.peak_resident_records <= bound, "{s:?}");
        if c == 1 {
            assert!(s.peak_resident_units <= k as u64, "K {k}: {s:?}");
            // Whole shards: each non-empty shard file opened once per epoch.
            let nonempty = COUNTS.iter().filter(|&&n| n > 0).count() as u64;
            assert_eq!(stream.data().files_opened(), 2 * nonempty);
        }
        // Each record (hence each byte of each shard) read exactly once per epoch.
        assert_eq!(s.records_loaded, 2 * len);
        assert_eq!(
            stream.data().bytes_read() - before,
            2 * body_bytes,
            "K {k} C {c}"
        );
        // One load per non-empty window (a window of empty shards is never loaded).
        let windows = stream.order().windows_per_epoch();
        assert!(s.windows_loaded as usize <= 2 * windows);
        assert!(s.windows_loaded as usize > windows);
    }
}

#[test]
fn random_access_reads_one_record() {
    let dir = set();
    let stream = open(dir.path(), 1, 2, 1);
    let before = stream.data().bytes_read();
    stream.record_at(1000).unwrap();
    assert_eq!(stream.data().bytes_read() - before, 2 + 2 * N as u64);
}

#[test]
fn whole_shards_are_checksummed_and_verify_finds_corruption() {
    let dir = set();
    let stream = open(dir.path(), 0, 2, 1);
    stream.data().verify_checksums().unwrap();
    // Flip one token bit (still a valid token) in shard 4.
    let path = dir.path().join(shard_file_name(4));
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 2;
    bytes[last] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let err = stream.data().verify_checksums().unwrap_err().to_string();
    assert!(
        err.contains("checksum") && err.contains("shard-00004"),
        "{err}"
    );
    // Sequential reading of whole shards hits it too, naming the file; the position stays.
    let mut cursor = stream.cursor(0);
    let err = (0..stream.len())
        .find_map(|_| cursor.next_record().err())
        .expect("the corrupt shard is read in epoch 0");
    let text = err.to_string();
    assert!(
        text.contains("checksum") && text.contains("shard-00004"),
        "{text}"
    );
    let at = cursor.position();
    assert!(cursor.next_record().is_err());
    assert_eq!(cursor.position(), at);
}

#[test]
fn out_of_range_tokens_and_labels_name_the_file_and_record() {
    let dir = set();
    let stream = open(dir.path(), 0, 2, 3);
    // Record 2 of shard 0: token 0 → 0xFFFF (beyond the codebook).
    let path = dir.path().join(shard_file_name(0));
    let mut bytes = std::fs::read(&path).unwrap();
    let count = COUNTS[0];
    let at = 40 + 2 * count + 2 * N as usize * 2;
    bytes[at..at + 2].copy_from_slice(&u16::MAX.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let err = stream.data().get(global(0, 2)).unwrap_err().to_string();
    assert!(
        err.contains("shard-00000") && err.contains("record 2") && err.contains("65535"),
        "{err}"
    );
    let mut cursor = stream.cursor(0);
    let err = (0..stream.len())
        .find_map(|_| cursor.next_record().err())
        .expect("the bad token is read in epoch 0")
        .to_string();
    assert!(
        err.contains("shard-00000") && err.contains("65535"),
        "{err}"
    );

    // A label beyond the class list.
    let path = dir.path().join(shard_file_name(2));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[40..42].copy_from_slice(&9u16.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let err = stream.data().get(global(2, 0)).unwrap_err().to_string();
    assert!(
        err.contains("shard-00002") && err.contains("label 9"),
        "{err}"
    );
}

/// The error of opening `dir`.
fn open_err(dir: &Path) -> DataError {
    ShardSet::open(dir).unwrap_err()
}

#[test]
fn broken_runs_are_errors_naming_the_file() {
    // Missing shard.
    let dir = set();
    std::fs::remove_file(dir.path().join(shard_file_name(3))).unwrap();
    let err = open_err(dir.path());
    assert!(
        matches!(&err, DataError::InvalidShard { path, .. } if path.ends_with(shard_file_name(3))),
        "{err}"
    );
    assert!(err.to_string().contains("missing"), "{err}");

    // Truncated shard.
    let dir = set();
    let path = dir.path().join(shard_file_name(2));
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
    let err = open_err(dir.path());
    assert!(
        matches!(&err, DataError::TruncatedShard { path: p, expected, found }
            if p == &path && *expected == bytes.len() as u64 && *found == bytes.len() as u64 - 3),
        "{err}"
    );

    // Wrong token count, codebook, record count: the header disagrees with the index.
    let cases: [(&str, Shard); 3] = [
        (
            "5 tokens per record, the index says 4",
            Shard::new(5, V, 1, vec![0; 3], vec![1; 15]).unwrap(),
        ),
        (
            "512 as codebook size, the index says 1024",
            Shard::new(N, 512, 1, vec![0; 3], vec![1; 12]).unwrap(),
        ),
        (
            "2 records, the index says 3",
            Shard::new(N, V, 1, vec![0; 2], vec![1; 8]).unwrap(),
        ),
    ];
    for (want, shard) in cases {
        let dir = set();
        let path = dir.path().join(shard_file_name(3));
        shard.write(&path).unwrap();
        let err = open_err(dir.path());
        let text = err.to_string();
        assert!(
            text.contains(want) && text.contains(&shard_file_name(3)),
            "{want}: {text}"
        );
    }

    // Not a shard at all.
    let dir = set();
    std::fs::write(dir.path().join(shard_file_name(5)), b"hello").unwrap();
    let text = open_err(dir.path()).to_string();
    assert!(text.contains(&shard_file_name(5)), "{text}");

    // Unfinished run, missing index.
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(open_err(dir.path()), DataError::Io { .. }));
    write_set(dir.path(), &COUNTS);
    let index_path = dir.path().join(INDEX_FILE);
    let mut index = ShardIndex::read(dir.path()).unwrap();
    index.shards.pop();
    std::fs::write(&index_path, serde_json::to_string(&index).unwrap()).unwrap();
    let text = open_err(dir.path()).to_string();
    assert!(
        text.contains("unfinished") && text.contains("6 of 7"),
        "{text}"
    );

    // A file name that leaves the directory.
    index.shards.push(ShardEntry {
        file: "../shard-00006.rartok".into(),
        first_image: 6,
        num_images: 1,
        num_records: 6,
        skipped: Vec::new(),
    });
    std::fs::write(&index_path, serde_json::to_string(&index).unwrap()).unwrap();
    let text = open_err(dir.path()).to_string();
    assert!(text.contains("not a plain file name"), "{text}");

    // No records at all; bad options.
    let dir = tempfile::tempdir().unwrap();
    write_set(dir.path(), &[0, 0]);
    let text = open_err(dir.path()).to_string();
    assert!(text.contains("no records"), "{text}");
    let dir = set();
    for (k, c) in [(0, 1), (1, 0)] {
        let config = StreamConfig::new(0)
            .with_window_units(k)
            .with_chunks_per_unit(c);
        assert!(matches!(
            SampleStream::new(ShardSet::open(dir.path()).unwrap(), config),
            Err(DataError::InvalidInput { .. })
        ));
    }
}

#[test]
fn a_shard_truncated_after_opening_is_reported_while_reading() {
    let dir = set();
    let stream = open(dir.path(), 0, 2, 2);
    let path = dir.path().join(shard_file_name(4));
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
    let mut cursor = stream.cursor(0);
    let err = (0..stream.len())
        .find_map(|_| cursor.next_record().err())
        .expect("shard 4 is read in epoch 0");
    assert!(
        matches!(&err, DataError::TruncatedShard { path: p, .. } if p == &path),
        "{err}"
    );
    // Random access to its last record too.
    assert!(matches!(
        stream.data().get(global(4, 8)),
        Err(DataError::TruncatedShard { .. })
    ));
    std::fs::remove_file(&path).unwrap();
    let text = stream.data().get(global(4, 0)).unwrap_err().to_string();
    assert!(text.contains("shard-00004"), "{text}");
}
