//! Mutation fuzz of the shard readers (a fixed seed and a bounded count; `RAR_FUZZ_COUNT` in
//! the ignored long run): a shard of a tiny set with random bytes flipped, runs overwritten,
//! bytes inserted or its tail cut off. Opening, verifying and streaming the set never panics;
//! any change to a shard's bytes is an error naming that shard (the header checks, the length
//! check and the CRC-32 leave no byte unguarded).

mod common;

use burn_dataset::Dataset;
use common::*;
use rar_core::rng::Xoshiro256PlusPlus;
use rar_data::shard::shard_file_name;
use rar_data::{SampleStream, ShardSet, StreamConfig};

fn mutate(bytes: &[u8], rng: &mut Xoshiro256PlusPlus) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let at = |rng: &mut Xoshiro256PlusPlus, len: usize| rng.below(len.max(1) as u64) as usize;
    match rng.below(4) {
        0 => {
            let i = at(rng, out.len());
            out[i] ^= 1 << rng.below(8);
        }
        1 => {
            let i = at(rng, out.len());
            let n = (1 + rng.below(8) as usize).min(out.len() - i);
            for b in &mut out[i..i + n] {
                *b = !*b;
            }
        }
        2 => {
            let i = at(rng, out.len());
            out.insert(i, rng.below(256) as u8);
        }
        _ => out.truncate(at(rng, out.len())),
    }
    out
}

/// Opens, verifies and streams the set; the first error's text.
fn read_all(dir: &std::path::Path) -> Option<String> {
    let set = match ShardSet::open(dir) {
        Ok(set) => set,
        Err(e) => return Some(e.to_string()),
    };
    if let Err(e) = set.verify_checksums() {
        return Some(e.to_string());
    }
    for i in 0..set.len() {
        if let Err(e) = set.get(i) {
            return Some(e.to_string());
        }
    }
    let stream = SampleStream::new(set, StreamConfig::new(3).with_window_units(2)).unwrap();
    let mut cursor = stream.cursor(0);
    for _ in 0..stream.len() {
        if let Err(e) = cursor.next_record() {
            return Some(e.to_string());
        }
    }
    None
}

fn fuzz(count: usize) {
    let dir = set();
    let victim = dir.path().join(shard_file_name(4));
    let original = std::fs::read(&victim).unwrap();
    assert!(read_all(dir.path()).is_none(), "the intact set reads");
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(1201);
    for k in 0..count {
        let mutant = mutate(&original, &mut rng);
        if mutant == original {
            continue;
        }
        std::fs::write(&victim, &mutant).unwrap();
        let outcome = std::panic::catch_unwind(|| read_all(dir.path()))
            .unwrap_or_else(|_| panic!("mutant {k}: a reader panicked"));
        let err = outcome.unwrap_or_else(|| panic!("mutant {k}: the damage went unnoticed"));
        assert!(err.contains(&shard_file_name(4)), "mutant {k}: {err}");
    }
    std::fs::write(&victim, &original).unwrap();
}

#[test]
fn mutated_shards_are_errors_naming_the_shard() {
    fuzz(200);
}

#[test]
#[ignore = "long run: RAR_FUZZ_COUNT mutations (default 20000)"]
fn mutated_shards_long_run() {
    let count = std::env::var("RAR_FUZZ_COUNT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    fuzz(count);
}
