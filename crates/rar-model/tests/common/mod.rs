//! Shared helpers for the integration tests: fixture discovery, safetensors reading, devices and
//! error metrics. The fixtures (the independent PyTorch reference) are found through
//! `rar_core::parity` (RAR_PARITY_DIR or ../shared/parity); shapes always come from the files.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor, TensorData};
use rar_model::{Rar, RarConfig};

/// The devices every numeric test runs on (flex, ndarray and wgpu as the features allow).
#[allow(unused_imports)]
pub use rar_testkit::{Tolerance, devices};

/// The `rar_*` fixture directories, or an empty list (skip) when fixtures are absent.
pub fn model_dirs() -> Vec<PathBuf> {
    match rar_core::parity::parity_dir_for_tests() {
        Some(dir) => {
            let dirs = rar_core::parity::rar_model_dirs(&dir).expect("read parity dir");
            assert!(
                !dirs.is_empty(),
                "no rar_* fixture directories in {}",
                dir.display()
            );
            dirs
        }
        None => Vec::new(),
    }
}

/// The parity directory itself (None when absent).
pub fn parity_dir() -> Option<PathBuf> {
    rar_core::parity::parity_dir_for_tests()
}

/// The model config of a fixture directory.
pub fn fixture_config(dir: &Path) -> RarConfig {
    RarConfig::from_reference_json(dir.join("config.json")).expect("fixture config")
}

/// The fixture model loaded from its `.bin`.
pub fn fixture_model(dir: &Path, device: &Device) -> Rar {
    let config = fixture_config(dir);
    Rar::from_pytorch(dir.join("model.bin"), &config, device).expect("load fixture model.bin")
}

#[allow(unused_imports)]
pub use rar_core::parity::rel_err;

/// A safetensors fixture file: a tuple-returning view over [`rar_core::parity::Fixture`].
pub struct Fixture(rar_core::parity::Fixture);

impl Fixture {
    pub fn open(path: impl AsRef<Path>) -> Self {
        Self(rar_core::parity::Fixture::open(path))
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.has(name)
    }

    pub fn f32(&self, name: &str) -> (Vec<usize>, Vec<f32>) {
        let a = self.0.f32(name);
        (a.shape, a.data)
    }

    pub fn i64(&self, name: &str) -> (Vec<usize>, Vec<i64>) {
        let a = self.0.i64(name);
        (a.shape, a.data)
    }

    pub fn scalar_f32(&self, name: &str) -> f32 {
        self.f32(name).1[0]
    }
}

/// A float tensor's values as f32.
pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().expect("f32 data")
}

/// An int tensor's values as i64.
pub fn int_values<const D: usize>(t: Tensor<D, Int>) -> Vec<i64> {
    t.into_data().try_into_vec_as::<i64>().expect("i64 data")
}

/// Builds an int tensor.
pub fn ints<const D: usize>(v: Vec<i64>, shape: [usize; D], device: &Device) -> Tensor<D, Int> {
    Tensor::from_data(TensorData::new(v, shape), device)
}

/// Rows `[b][k]` of an `[B, N]` i64 array as usize orders.
pub fn orders_of(shape: &[usize], v: &[i64]) -> Vec<Vec<usize>> {
    v.chunks(shape[1])
        .map(|r| r.iter().map(|&x| x as usize).collect())
        .collect()
}

/// Tracks the worst relative error per named quantity and prints a summary.
#[derive(Default)]
pub struct Worst(pub Vec<(String, f64)>);

impl Worst {
    pub fn record(&mut self, name: impl Into<String>, err: f64, tol: f64) {
        let name = name.into();
        assert!(
            err <= tol,
            "{name}: relative error {err:.3e} exceeds {tol:.0e}"
        );
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some((_, w)) => *w = w.max(err),
            None => self.0.push((name, err)),
        }
    }

    pub fn print(&self, title: &str) {
        eprintln!("worst relative errors — {title}");
        for (n, e) in &self.0 {
            eprintln!("  {n:<48} {e:.3e}");
        }
    }
}
