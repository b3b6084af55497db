//! Helpers shared by the integration tests (fixtures, devices, error metrics).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use burn::prelude::*;

/// The devices every numeric test runs on (flex, ndarray and wgpu as the features allow).
#[allow(unused_imports)]
pub use rar_testkit::{Tolerance, devices};

/// `RAR_PARITY_DIR/maskgit_vqgan` (or `shared/parity/maskgit_vqgan`), `None` when the
/// fixtures are absent and the variable is unset.
pub fn vq_fixture_dir() -> Option<PathBuf> {
    let dir = rar_core::parity::parity_dir_for_tests()?.join("maskgit_vqgan");
    assert!(
        dir.is_dir(),
        "{} is missing: the tokenizer parity fixtures are required",
        dir.display()
    );
    Some(dir)
}

/// A tensor of the fixture file: shape and values as f64.
pub struct Array {
    pub shape: Vec<usize>,
    pub values: Vec<f64>,
}

/// Reads every tensor of a safetensors file (F32 or I64).
pub fn read_fixtures(path: &Path) -> std::collections::BTreeMap<String, Array> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("fixture file parses");
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let data = view.data();
            let values = match view.dtype() {
                safetensors::Dtype::F32 => data
                    .chunks_exact(4)
                    .map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap())))
                    .collect(),
                safetensors::Dtype::I64 => data
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64)
                    .collect(),
                other => panic!("{name}: unexpected dtype {other:?}"),
            };
            (
                name.to_string(),
                Array {
                    shape: view.shape().to_vec(),
                    values,
                },
            )
        })
        .collect()
}

impl Array {
    pub fn tensor4(&self, device: &Device) -> Tensor<4> {
        let v: Vec<f32> = self.values.iter().map(|&x| x as f32).collect();
        let s: [usize; 4] = self.shape.clone().try_into().expect("rank 4");
        Tensor::from_data(TensorData::new(v, s), device)
    }

    pub fn ids(&self, device: &Device) -> Tensor<2, Int> {
        let v: Vec<i64> = self.values.iter().map(|&x| x as i64).collect();
        let s: [usize; 2] = self.shape.clone().try_into().expect("rank 2");
        Tensor::from_data(TensorData::new(v, s), device)
    }
}

/// Values of a float tensor as f64.
pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data()
        .try_into_vec_as::<f32>()
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect()
}

/// Values of an int tensor as i64.
pub fn int_values<const D: usize>(t: Tensor<D, Int>) -> Vec<i64> {
    t.into_data().try_into_vec_as::<i64>().unwrap()
}

/// ‖a − b‖ / ‖b‖.
pub fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    let num: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    (num / den.max(f64::MIN_POSITIVE)).sqrt()
}
