//! The transformer MLP (timm `Mlp`, spec §3.6): `fc1` → exact GELU → dropout → `fc2` → dropout.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::tensor::activation::gelu;
use burn::tensor::{Device, Tensor};

/// Exact GELU `x·Φ(x) = x·(1 + erf(x/√2))/2`, PyTorch's default (not the tanh approximation).
///
/// burn's fused [`gelu`] computes the exact form, but its default *backward* (used by the
/// ndarray and CubeCL backends) is the derivative of the tanh approximation. On an autodiff
/// device the function is therefore composed from `erf` and products, whose derivatives are
/// exact, so the gradients match the reference's; elsewhere the fused kernel is used.
pub fn exact_gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if x.device().is_autodiff() {
        let cdf = x
            .clone()
            .div_scalar(std::f64::consts::SQRT_2)
            .erf()
            .add_scalar(1.0);
        x * cdf.mul_scalar(0.5)
    } else {
        gelu(x)
    }
}

use crate::init;

/// Configuration of [`Mlp`].
#[derive(Config, Debug)]
pub struct MlpConfig {
    /// Input and output width `C`.
    pub hidden_size: usize,
    /// Hidden width `I`.
    pub intermediate_size: usize,
    /// Dropout after the activation and after `fc2` (training only).
    #[config(default = 0.0)]
    pub dropout: f64,
}

impl MlpConfig {
    /// Builds the MLP with truncated-normal(0.02) weights and zero biases.
    pub fn init(&self, device: &Device) -> Mlp {
        Mlp {
            fc1: init::linear_trunc_normal(self.hidden_size, self.intermediate_size, device),
            fc2: init::linear_trunc_normal(self.intermediate_size, self.hidden_size, device),
            drop: DropoutConfig::new(self.dropout).init(),
        }
    }
}

/// Two-layer perceptron with exact (erf) GELU (checkpoint prefix `blocks.{i}.mlp`).
#[derive(Module, Debug)]
pub struct Mlp {
    /// `C → I` projection.
    pub fc1: Linear,
    /// `I → C` projection.
    pub fc2: Linear,
    /// Dropout used after the activation and after `fc2` (independent draws).
    pub drop: Dropout,
}

impl Mlp {
    /// Applies the MLP to `[…, C]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let h = self.drop.forward(exact_gelu(self.fc1.forward(x)));
        self.drop.forward(self.fc2.forward(h))
    }
}
