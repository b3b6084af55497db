//! The transformer MLP (timm `Mlp`, the official `modeling/rar.py`): `fc1` → exact GELU → dropout → `fc2` → dropout.

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
/// On flex (f32) one fused node with the exact derivative runs instead
/// ([`crate::flex_kernels`]; burn-flex's own `gelu_backward` is exact too, but measured slower
/// than the composition — its per-element `erf` and `exp` are not vectorised).
pub fn exact_gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if x.device().is_autodiff() && crate::flex_kernels::fused_ops_apply(&x.device(), x.dtype()) {
        return crate::flex_kernels::gelu(x);
    }
    if x.device().is_autodiff() {
        composed_gelu(x)
    } else {
        gelu(x)
    }
}

/// `x·(1 + erf(x/√2))/2` as burn's element-wise operations, whose derivatives are exact.
pub(crate) fn composed_gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let cdf = x
        .clone()
        .div_scalar(std::f64::consts::SQRT_2)
        .erf()
        .add_scalar(1.0);
    x * cdf.mul_scalar(0.5)
}

use crate::init;
use crate::precision;
use crate::train_ops::dropout;

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
        let h = dropout(&self.drop, exact_gelu(precision::linear(&self.fc1, x)));
        dropout(&self.drop, precision::linear(&self.fc2, h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    /// On every device the activation is the erf form in value and in gradient
    /// (`Φ(x) + x·φ(x)`), whichever path computes it.
    #[test]
    fn gelu_value_and_gradient_are_exact() {
        let xs: Vec<f32> = (-40..=40).map(|i| i as f32 * 0.15).collect();
        let phi = |x: f64| 0.5 * (1.0 + erf(x / std::f64::consts::SQRT_2));
        let pdf = |x: f64| (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
        #[allow(unused_mut)]
        let mut devices = vec![Device::flex()];
        #[cfg(feature = "ndarray")]
        #[allow(deprecated)]
        devices.push(Device::ndarray());
        for device in devices {
            let device = device.autodiff();
            let x = Tensor::<1>::from_data(TensorData::new(xs.clone(), [xs.len()]), &device)
                .require_grad();
            let y = exact_gelu(x.clone());
            let grads = y.clone().sum().backward();
            let to_vec = |t: Tensor<1>| t.into_data().try_into_vec_as::<f32>().expect("f32");
            let dy = to_vec(x.grad(&grads).expect("gradient"));
            let y = to_vec(y);
            for (i, &x) in xs.iter().enumerate() {
                let x = x as f64;
                assert!(
                    (y[i] as f64 - x * phi(x)).abs() < 1e-6,
                    "{device:?} value at {x}"
                );
                let want = phi(x) + x * pdf(x);
                assert!(
                    (dy[i] as f64 - want).abs() < 1e-5,
                    "{device:?} gradient at {x}"
                );
            }
        }
    }

    /// erf by its Maclaurin series (|x| ≤ 6/√2 here, so 80 terms are plenty in f64).
    fn erf(x: f64) -> f64 {
        let mut term = x;
        let mut sum = x;
        for n in 1..80 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        2.0 / std::f64::consts::PI.sqrt() * sum
    }
}
