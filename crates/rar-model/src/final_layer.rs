//! The final adaLN layer before the head (the official `modeling/rar.py`).
//!
//! ```text
//! (scale, shift) = split(Linear_2C(SiLU(c)), 2)     # scale FIRST — the opposite of DiT
//! h = LN_f(x) ⊙ (1 + scale) + shift                 # LN_f: eps 1e-6, no affine parameters
//! ```

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{Device, Tensor};

use crate::init;
use crate::train_ops::{linear_chunks, modulated_layer_norm};

/// Final adaLN layer (checkpoint prefix `adaln_before_head`). Its LayerNorm has no
/// parameters, so the only weights are the modulation Linear's.
#[derive(Module, Debug)]
pub struct FinalLayer {
    /// adaLN modulation `C → 2C` (checkpoint key `adaLN_modulation.1`).
    pub ada_ln_modulation: Linear,
    /// Epsilon of the affine-free LayerNorm.
    pub eps: f64,
}

impl FinalLayer {
    /// A zero-initialised final layer (adaLN-zero, the official `modeling/rar.py`).
    pub fn new(hidden_size: usize, eps: f64, device: &Device) -> Self {
        Self {
            ada_ln_modulation: init::linear_zeros(hidden_size, 2 * hidden_size, device),
            eps,
        }
    }

    /// Applies the layer: `x`, `silu_c` `[B, L, C]` → `[B, L, C]`.
    pub fn forward(&self, x: Tensor<3>, silu_c: Tensor<3>) -> Tensor<3> {
        let mut chunks = linear_chunks(&self.ada_ln_modulation, silu_c, 2).into_iter();
        let scale = chunks.next().expect("two chunks");
        let shift = chunks.next().expect("two chunks");
        // burn's LayerNorm module always carries a learnable gamma; the reference's final norm
        // has none, so call the functional op without scale and bias.
        modulated_layer_norm(x, None, None, self.eps, shift, scale)
    }
}
