//! The model's weights copied to host memory and packed for [`rar_kernels::PackedLinear`].

use burn::module::Param;
use burn::nn::{LayerNorm, Linear};
use burn::tensor::Tensor;
use rar_kernels::{PackedLinear, PackedPrecision};

use crate::block::RarBlock;
use crate::error::{RarModelError, Result};

/// Reads a tensor to the host as f32 (`name` is used in the error).
pub(crate) fn host<const D: usize>(tensor: Tensor<D>, name: &str) -> Result<Vec<f32>> {
    tensor
        .into_data()
        .try_into_vec_as::<f32>()
        .map_err(|e| RarModelError::InvalidInput(format!("reading {name} to the host: {e:?}")))
}

fn param<const D: usize>(p: &Param<Tensor<D>>, name: &str) -> Result<Vec<f32>> {
    host(p.val(), name)
}

/// Packs a burn `Linear` (`weight` `[in, out]`, optional bias).
pub(crate) fn linear(
    layer: &Linear,
    precision: PackedPrecision,
    name: &str,
) -> Result<PackedLinear> {
    let [k, n] = layer.weight.dims();
    let w = param(&layer.weight, &format!("{name}.weight"))?;
    let b = layer
        .bias
        .as_ref()
        .map(|b| param(b, &format!("{name}.bias")))
        .transpose()?;
    PackedLinear::new(&w, k, n, b.as_deref(), precision)
        .map_err(|e| RarModelError::InvalidInput(format!("{name}: {e}")))
}

/// A LayerNorm's affine parameters on the host.
#[derive(Debug, Clone)]
pub(crate) struct HostNorm {
    pub gamma: Vec<f32>,
    pub beta: Option<Vec<f32>>,
    pub eps: f32,
}

impl HostNorm {
    pub(crate) fn new(norm: &LayerNorm, eps: f64, name: &str) -> Result<Self> {
        Ok(Self {
            gamma: param(&norm.gamma, &format!("{name}.weight"))?,
            beta: norm
                .beta
                .as_ref()
                .map(|b| param(b, &format!("{name}.bias")))
                .transpose()?,
            eps: eps as f32,
        })
    }

    /// Normalises every `gamma.len()`-wide row of `x` in place.
    pub(crate) fn apply(&self, x: &mut [f32]) {
        rar_kernels::layer_norm_rows(
            x,
            self.gamma.len(),
            Some(&self.gamma),
            self.beta.as_deref(),
            self.eps,
        );
    }
}

/// One transformer block, packed.
#[derive(Debug, Clone)]
pub(crate) struct PackedBlock {
    pub ada: PackedLinear,
    pub norm1: HostNorm,
    pub qkv: PackedLinear,
    pub q_norm: HostNorm,
    pub k_norm: HostNorm,
    pub proj: PackedLinear,
    pub norm2: HostNorm,
    pub fc1: PackedLinear,
    pub fc2: PackedLinear,
}

impl PackedBlock {
    pub(crate) fn new(block: &RarBlock, precision: PackedPrecision, index: usize) -> Result<Self> {
        let name = |s: &str| format!("blocks.{index}.{s}");
        let eps = block.layer_norm_eps;
        Ok(Self {
            ada: linear(
                &block.ada_ln_modulation,
                precision,
                &name("adaLN_modulation.1"),
            )?,
            norm1: HostNorm::new(&block.norm1, eps, &name("norm1"))?,
            qkv: linear(&block.attn.qkv, precision, &name("attn.qkv"))?,
            q_norm: HostNorm::new(
                &block.attn.q_norm,
                block.attn.norm_eps,
                &name("attn.q_norm"),
            )?,
            k_norm: HostNorm::new(
                &block.attn.k_norm,
                block.attn.norm_eps,
                &name("attn.k_norm"),
            )?,
            proj: linear(&block.attn.proj, precision, &name("attn.proj"))?,
            norm2: HostNorm::new(&block.norm2, eps, &name("norm2"))?,
            fc1: linear(&block.mlp.fc1, precision, &name("mlp.fc1"))?,
            fc2: linear(&block.mlp.fc2, precision, &name("mlp.fc2"))?,
        })
    }

    /// Bytes of packed weights (what a decode step streams).
    pub(crate) fn bytes(&self) -> usize {
        [&self.ada, &self.qkv, &self.proj, &self.fc1, &self.fc2]
            .iter()
            .map(|l| l.bytes())
            .sum()
    }
}
