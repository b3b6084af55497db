//! One RAR transformer block: pre-norm attention and MLP, both modulated and gated by adaLN
//! (the official `modeling/rar.py`).
//!
//! ```text
//! m = Linear_6C(SiLU(c))                    c: per-position condition [B, L, C]
//! (shift_a, scale_a, gate_a, shift_m, scale_m, gate_m) = six consecutive C-chunks of m
//! x = x + gate_a ⊙ Attn(LN1(x) ⊙ (1 + scale_a) + shift_a)
//! x = x + gate_m ⊙ MLP (LN2(x) ⊙ (1 + scale_m) + shift_m)
//! ```
//!
//! Unlike DiT, `LN1`/`LN2` keep their own affine parameters (eps 1e-6). The modulation is
//! computed per position because the condition differs per position (class embedding plus a
//! per-position "timestep" row, the official `modeling/rar.py`). The block receives `SiLU(c)` already applied:
//! it is the same for every block, so the model computes it once per forward.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{LayerNorm, Linear};
use burn::tensor::{Device, Tensor};

use crate::attention::{Attention, AttentionConfig, Qkv};
use crate::cache::LayerKv;
use crate::init;
use crate::mlp::{Mlp, MlpConfig};
use crate::train_ops::{gated_residual, linear_chunks, modulated_layer_norm_module};

/// Configuration of [`RarBlock`].
#[derive(Config, Debug)]
pub struct RarBlockConfig {
    /// Model width `C`.
    pub hidden_size: usize,
    /// Number of attention heads.
    pub num_heads: usize,
    /// MLP hidden width `I`.
    pub intermediate_size: usize,
    /// Dropout after the attention projection and in the MLP (training only).
    #[config(default = 0.0)]
    pub dropout: f64,
    /// Dropout on attention probabilities (training only).
    #[config(default = 0.0)]
    pub attn_drop: f64,
    /// LayerNorm epsilon (norm1, norm2 and the QK-norms).
    #[config(default = 1e-6)]
    pub layer_norm_eps: f64,
}

impl RarBlockConfig {
    /// Builds the block with the reference initialisation (adaLN modulation zeroed, so the
    /// block starts as the identity).
    pub fn init(&self, device: &Device) -> RarBlock {
        let c = self.hidden_size;
        RarBlock {
            norm1: init::layer_norm(c, self.layer_norm_eps, device),
            attn: AttentionConfig::new(c, self.num_heads)
                .with_attn_drop(self.attn_drop)
                .with_proj_drop(self.dropout)
                .with_norm_eps(self.layer_norm_eps)
                .init(device),
            norm2: init::layer_norm(c, self.layer_norm_eps, device),
            mlp: MlpConfig::new(c, self.intermediate_size)
                .with_dropout(self.dropout)
                .init(device),
            ada_ln_modulation: init::linear_zeros(c, 6 * c, device),
            layer_norm_eps: self.layer_norm_eps,
        }
    }
}

/// A transformer block (checkpoint prefix `blocks.{i}`).
#[derive(Module, Debug)]
pub struct RarBlock {
    /// LayerNorm before attention (affine).
    pub norm1: LayerNorm,
    /// Causal self-attention with QK-norm.
    pub attn: Attention,
    /// LayerNorm before the MLP (affine).
    pub norm2: LayerNorm,
    /// The MLP.
    pub mlp: Mlp,
    /// adaLN modulation `C → 6C` (checkpoint key `adaLN_modulation.1`; index 0 of the
    /// reference's `Sequential` is the parameter-free SiLU).
    pub ada_ln_modulation: Linear,
    /// Epsilon of `norm1` and `norm2` (kept here because burn's `LayerNorm` hides its own).
    pub layer_norm_eps: f64,
}

impl RarBlock {
    /// The six modulation chunks for condition `SiLU(c)` `[B, L, C]`.
    fn modulation(&self, silu_c: Tensor<3>) -> Vec<Tensor<3>> {
        linear_chunks(&self.ada_ln_modulation, silu_c, 6)
    }

    /// Full-sequence forward with a causal mask. `x`, `silu_c`: `[B, L, C]`.
    pub fn forward(&self, x: Tensor<3>, silu_c: Tensor<3>) -> Tensor<3> {
        self.forward_with(x, silu_c, |attn, h| attn.forward(h))
    }

    /// Forward of `L` new positions starting at absolute position `start`, reading and
    /// extending the layer's KV cache: the new keys/values are written in place at
    /// `start … start + L − 1` and the new queries attend causally to positions `0 … start + L − 1`.
    pub(crate) fn forward_cached(
        &self,
        x: Tensor<3>,
        silu_c: Tensor<3>,
        cache: &mut LayerKv,
        start: usize,
    ) -> Tensor<3> {
        self.forward_with(x, silu_c, |attn, h| {
            let Qkv { q, k, v } = attn.project(h);
            let (keys, values) = cache.write_and_read(start, k, v);
            attn.output(attn.attend(q, keys, values))
        })
    }

    fn forward_with(
        &self,
        x: Tensor<3>,
        silu_c: Tensor<3>,
        attention: impl FnOnce(&Attention, Tensor<3>) -> Tensor<3>,
    ) -> Tensor<3> {
        let mut m = self.modulation(silu_c).into_iter();
        let mut next = || m.next().expect("adaLN modulation has six chunks");
        let (shift_a, scale_a, gate_a) = (next(), next(), next());
        let (shift_m, scale_m, gate_m) = (next(), next(), next());
        let eps = self.layer_norm_eps;
        let h = modulated_layer_norm_module(&self.norm1, x.clone(), eps, shift_a, scale_a);
        let x = gated_residual(x, gate_a, attention(&self.attn, h));
        let h = modulated_layer_norm_module(&self.norm2, x.clone(), eps, shift_m, scale_m);
        gated_residual(x, gate_m, self.mlp.forward(h))
    }
}
