//! Mutation fuzz of the three weight parsers (`.bin`, `.safetensors`, `.bpk`): the fixture
//! model's files with random bytes flipped, runs overwritten, bytes inserted or the tail cut
//! off — a fixed seed and a bounded count here, `RAR_FUZZ_COUNT` mutations per format in the
//! ignored long run (`cargo test -p rar-model --test mutated_files -- --ignored`). Every
//! mutated file loads or is an error naming the file; none panics, and whatever loads holds
//! finite weights only.

mod common;

use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};
use common::*;
use rar_core::rng::Xoshiro256PlusPlus;
use rar_model::Rar;

/// One random mutation of `bytes`.
fn mutate(bytes: &[u8], rng: &mut Xoshiro256PlusPlus) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let at = |rng: &mut Xoshiro256PlusPlus, len: usize| rng.below(len.max(1) as u64) as usize;
    match rng.below(4) {
        0 => {
            for _ in 0..1 + rng.below(8) {
                let i = at(rng, out.len());
                out[i] ^= 1 << rng.below(8);
            }
        }
        1 => {
            let i = at(rng, out.len());
            let n = (1 + rng.below(64) as usize).min(out.len() - i);
            let fill = if rng.below(2) == 0 { 0x00 } else { 0xFF };
            out[i..i + n].fill(fill);
        }
        2 => {
            let i = at(rng, out.len());
            let extra: Vec<u8> = (0..1 + rng.below(16))
                .map(|_| rng.below(256) as u8)
                .collect();
            out.splice(i..i, extra);
        }
        _ => out.truncate(at(rng, out.len())),
    }
    out
}

/// Whether every parameter of `model` is finite.
struct AllFinite(bool);

impl ModuleVisitor for AllFinite {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let v = param.val();
        self.0 &= !(v.clone().is_nan().any().into_scalar::<bool>()
            || v.is_inf().any().into_scalar::<bool>());
    }
}

fn fuzz(count: usize) {
    let Some(dir) = model_dirs().into_iter().next() else {
        return;
    };
    let config = fixture_config(&dir);
    let device = Device::flex();
    let tmp = tempfile::tempdir().unwrap();
    let bpk = tmp.path().join("model.bpk");
    Rar::from_pytorch(dir.join("model.bin"), &config, &device)
        .unwrap()
        .save_burnpack(&bpk)
        .unwrap();
    let sources = [dir.join("model.bin"), dir.join("model.safetensors"), bpk];
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(20261201);
    let (mut loaded, mut refused) = (0, 0);
    for source in &sources {
        let bytes = std::fs::read(source).unwrap();
        let ext = source.extension().unwrap().to_string_lossy().into_owned();
        for k in 0..count {
            let path = tmp.path().join(format!("mutant-{k}.{ext}"));
            std::fs::write(&path, mutate(&bytes, &mut rng)).unwrap();
            let result =
                std::panic::catch_unwind(|| Rar::from_checkpoint(&path, Some(&config), &device))
                    .unwrap_or_else(|_| panic!("{}: the loader panicked", path.display()));
            match result {
                Ok(model) => {
                    let mut finite = AllFinite(true);
                    model.model.visit(&mut finite);
                    assert!(finite.0, "{}: loaded non-finite weights", path.display());
                    loaded += 1;
                }
                Err(e) => {
                    let name = path.file_name().unwrap().to_string_lossy().into_owned();
                    assert!(e.to_string().contains(&name), "{}: {e}", path.display());
                    refused += 1;
                }
            }
            remove(&path);
        }
    }
    eprintln!(
        "{} mutants: {loaded} loaded, {refused} refused",
        loaded + refused
    );
    assert!(refused > 0, "no mutation was detected at all");
}

fn remove(path: &Path) {
    let _ = std::fs::remove_file(path);
}

#[test]
fn mutated_weight_files_load_or_fail_cleanly() {
    fuzz(40);
}

#[test]
#[ignore = "long run: RAR_FUZZ_COUNT mutations per format (default 700)"]
fn mutated_weight_files_long_run() {
    let count = std::env::var("RAR_FUZZ_COUNT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(700);
    fuzz(count);
}
