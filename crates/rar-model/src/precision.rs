//! Mixed precision: bf16 matrix products over fp32 weights ("autocast").
//!
//! The reference trains in bf16 mixed precision (`mixed_precision: bf16` through Hugging Face
//! accelerate, i.e. `torch.autocast`): the parameters, their gradients and AdamW's moments stay
//! fp32, and only the matrix products run in bf16 — their inputs are rounded to bf16 and their
//! results come out in bf16 — while LayerNorm, softmax and the cross-entropy run in fp32.
//! burn 0.22 has no such mode (`Device::configure(FloatDType::BF16)` would make the
//! parameters and optimizer state bf16 too), so this module provides it:
//!
//! * [`with_compute_precision`] sets the precision of the products for the forward passes run
//!   inside it, on the calling thread — like `torch.autocast`, the setting is per thread, so
//!   each worker of a multi-device step sets its own;
//! * [`linear`] and [`matmul`], used by every product of the model, cast their operands to the
//!   compute dtype and the result back to the input's dtype. The casts are recorded by burn's
//!   autodiff like any operation: the backward pass runs the products in bf16 as well, and the
//!   gradients reach the fp32 parameters as fp32.
//!
//! One deliberate difference from `torch.autocast`: the bf16 result of a product is widened to
//! fp32 at once, so the element-wise operations that follow (GELU, modulation, gates,
//! residual adds) run in fp32 rather than in bf16. Every product is rounded exactly as autocast
//! rounds it; what follows is at least as precise.

use std::cell::Cell;

use burn::nn::Linear;
use burn::tensor::module::linear as linear_op;
use burn::tensor::{DType, Device, FloatDType, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{RarModelError, Result};

/// The dtype of the matrix products of a forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComputePrecision {
    /// Everything in fp32 (burn's default float dtype).
    #[default]
    F32,
    /// Matrix products in bf16 over fp32 weights (the reference's `mixed_precision: bf16`).
    Bf16,
}

impl ComputePrecision {
    /// The float dtype of the products.
    pub fn dtype(self) -> FloatDType {
        match self {
            Self::F32 => FloatDType::F32,
            Self::Bf16 => FloatDType::BF16,
        }
    }

    /// Parses `f32`, `fp32`, `bf16` (any case), for command lines.
    pub fn parse(name: &str) -> Result<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "f32" | "fp32" => Ok(Self::F32),
            "bf16" => Ok(Self::Bf16),
            _ => Err(RarModelError::InvalidConfig(format!(
                "unknown compute precision '{name}': expected f32 or bf16"
            ))),
        }
    }

    /// Checks that `device`'s backend can compute in this precision, so a run fails up front
    /// with a message instead of inside a backend kernel (burn's ndarray backend, for one, has
    /// no bf16 tensors).
    pub fn check_device(self, device: &Device) -> Result<()> {
        let dtype = DType::from(self.dtype());
        if device.supports_dtype(dtype) {
            Ok(())
        } else {
            Err(RarModelError::InvalidConfig(format!(
                "compute precision {self:?}: device {device:?} does not support {dtype:?} tensors"
            )))
        }
    }
}

thread_local! {
    static PRECISION: Cell<ComputePrecision> = const { Cell::new(ComputePrecision::F32) };
}

/// The compute precision in effect on this thread ([`ComputePrecision::F32`] outside
/// [`with_compute_precision`]).
pub fn compute_precision() -> ComputePrecision {
    PRECISION.with(Cell::get)
}

/// Runs `f` with the model's matrix products in `precision` on this thread, restoring the
/// previous setting afterwards (also when `f` panics).
pub fn with_compute_precision<R>(precision: ComputePrecision, f: impl FnOnce() -> R) -> R {
    struct Restore(ComputePrecision);
    impl Drop for Restore {
        fn drop(&mut self) {
            PRECISION.with(|p| p.set(self.0));
        }
    }
    let _restore = Restore(PRECISION.with(|p| p.replace(precision)));
    f()
}

/// `x` cast to the compute dtype of this thread (unchanged when it already has it), for
/// operations such as the fused attention whose result is cast back with [`to_dtype`].
pub fn to_compute_dtype<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    to_dtype(x, compute_precision().dtype().into())
}

/// `x` cast to `dtype` (unchanged when it already has it).
pub fn to_dtype<const D: usize>(x: Tensor<D>, dtype: DType) -> Tensor<D> {
    if x.dtype() == dtype {
        x
    } else {
        x.cast(FloatDType::from(dtype))
    }
}

/// burn's `linear` (`x · w + b`, weight `[in, out]`) in the compute precision, bias add
/// included (as in autocast's `addmm`); the result has `x`'s dtype.
pub fn linear_parts<const D: usize>(
    x: Tensor<D>,
    weight: Tensor<2>,
    bias: Option<Tensor<1>>,
) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if crate::flex_kernels::fused_products_apply(&x.device(), x.dtype()) {
        return crate::flex_kernels::linear(x, weight, bias);
    }
    match compute_precision() {
        ComputePrecision::F32 => linear_op(x, weight, bias),
        precision => {
            let dtype = DType::from(precision.dtype());
            let out_dtype = x.dtype();
            let y = linear_op(
                to_dtype(x, dtype),
                to_dtype(weight, dtype),
                bias.map(|b| to_dtype(b, dtype)),
            );
            to_dtype(y, out_dtype)
        }
    }
}

/// `layer.forward(x)` in the compute precision (the result has `x`'s dtype).
pub fn linear<const D: usize>(layer: &Linear, x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if crate::flex_kernels::fused_products_apply(&x.device(), x.dtype()) {
        let bias = layer.bias.as_ref().map(|b| b.val());
        return crate::flex_kernels::linear(x, layer.weight.val(), bias);
    }
    match compute_precision() {
        ComputePrecision::F32 => layer.forward(x),
        _ => linear_parts(x, layer.weight.val(), layer.bias.as_ref().map(|b| b.val())),
    }
}

/// `a.matmul(b)` in the compute precision (the result has `a`'s dtype).
pub fn matmul<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> Tensor<D> {
    match compute_precision() {
        ComputePrecision::F32 => a.matmul(b),
        precision => {
            let dtype = DType::from(precision.dtype());
            let out_dtype = a.dtype();
            to_dtype(to_dtype(a, dtype).matmul(to_dtype(b, dtype)), out_dtype)
        }
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use burn::tensor::{TensorData, bf16};

    fn host(values: &[f32], shape: [usize; 2], device: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(values.to_vec(), shape), device)
    }

    fn values(t: Tensor<2>) -> Vec<f32> {
        t.into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap()
    }

    /// Reproducible values of mixed magnitude and sign, most of them not representable in
    /// bf16.
    fn draws(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = rar_core::rng::Xoshiro256PlusPlus::seed_from_u64(seed);
        (0..n)
            .map(|_| ((rng.next_f64() - 0.5) * 3.0) as f32)
            .collect()
    }

    #[test]
    fn bf16_products_round_operands_and_result_like_autocast() {
        let (m, k, n) = (5, 37, 6);
        let (x, w, b) = (draws(m * k, 1), draws(k * n, 2), draws(n, 3));
        for device in [Device::flex(), Device::flex().autodiff()] {
            let xt = host(&x, [m, k], &device);
            let wt = host(&w, [k, n], &device);
            let bt = Tensor::<1>::from_data(TensorData::new(b.clone(), [n]), &device);
            let mixed = with_compute_precision(ComputePrecision::Bf16, || {
                linear_parts(xt.clone(), wt.clone(), Some(bt.clone()))
            });
            assert_eq!(
                mixed.dtype(),
                DType::F32,
                "the result has the input's dtype"
            );
            let mixed = values(mixed);
            let full = values(linear_parts(xt, wt, Some(bt)));
            // Host reference: operands rounded to bf16, exact sum, bias added, rounded once.
            let r = |v: f32| bf16::from_f32(v).to_f64();
            let mut worst_ulps = 0.0f64;
            for i in 0..m {
                for j in 0..n {
                    let dot: f64 = (0..k).map(|p| r(x[i * k + p]) * r(w[p * n + j])).sum();
                    let want = bf16::from_f64(dot + r(b[j])).to_f64();
                    let got = mixed[i * n + j] as f64;
                    assert_eq!(
                        (got as f32).to_bits() & 0xffff,
                        0,
                        "{got} is not a bf16 value"
                    );
                    // One bf16 ulp (2⁻⁷ relative): the backend sums in fp32 before rounding.
                    let ulp = want.abs().max(1e-30) * 2f64.powi(-7);
                    worst_ulps = worst_ulps.max((got - want).abs() / ulp);
                }
            }
            assert!(worst_ulps <= 1.0, "{device:?}: {worst_ulps} bf16 ulps off");
            assert!(
                mixed.iter().zip(&full).any(|(a, b)| a != b),
                "bf16 products differ from fp32 ones"
            );
        }
    }

    #[test]
    fn gradients_of_bf16_products_reach_fp32_weights_in_fp32() {
        let device = Device::flex().autodiff();
        let x = host(&draws(12, 4), [3, 4], &device);
        let w = host(&draws(8, 5), [4, 2], &device).require_grad();
        let y = with_compute_precision(ComputePrecision::Bf16, || matmul(x.clone(), w.clone()));
        let grads = y.sum().backward();
        let g = w.grad(&grads).expect("a gradient for w");
        assert_eq!(g.dtype(), DType::F32);
        // d(Σ x·w)/dw[p, j] = Σᵢ x[i, p], computed from bf16-rounded x.
        let xs: Vec<f32> = values(x.inner());
        let got = values(g);
        for p in 0..4 {
            let want: f64 = (0..3).map(|i| bf16::from_f32(xs[i * 4 + p]).to_f64()).sum();
            for j in 0..2 {
                let err = (got[p * 2 + j] as f64 - want).abs();
                assert!(err <= want.abs() * 2f64.powi(-7) + 1e-6, "{p},{j}: {err}");
            }
        }
    }

    #[test]
    fn the_setting_is_scoped_to_the_closure_and_the_thread() {
        assert_eq!(compute_precision(), ComputePrecision::F32);
        with_compute_precision(ComputePrecision::Bf16, || {
            assert_eq!(compute_precision(), ComputePrecision::Bf16);
            let other = std::thread::spawn(compute_precision).join().unwrap();
            assert_eq!(other, ComputePrecision::F32, "other threads keep their own");
            with_compute_precision(ComputePrecision::F32, || {
                assert_eq!(compute_precision(), ComputePrecision::F32)
            });
            assert_eq!(compute_precision(), ComputePrecision::Bf16);
        });
        let unwound = std::panic::catch_unwind(|| {
            with_compute_precision(ComputePrecision::Bf16, || panic!("inside"))
        });
        assert!(unwound.is_err());
        assert_eq!(
            compute_precision(),
            ComputePrecision::F32,
            "restored after a panic"
        );
    }

    #[test]
    fn names_parse_and_devices_are_checked() {
        assert_eq!(
            ComputePrecision::parse("BF16").unwrap(),
            ComputePrecision::Bf16
        );
        assert_eq!(
            ComputePrecision::parse("fp32").unwrap(),
            ComputePrecision::F32
        );
        assert!(ComputePrecision::parse("f16").is_err());
        ComputePrecision::Bf16
            .check_device(&Device::flex())
            .unwrap();
        #[cfg(feature = "ndarray")]
        #[allow(deprecated)]
        {
            let err = ComputePrecision::Bf16
                .check_device(&Device::ndarray())
                .unwrap_err();
            assert!(err.to_string().contains("BF16"), "{err}");
        }
        let json = serde_json::to_string(&ComputePrecision::Bf16).unwrap();
        assert_eq!(json, "\"bf16\"");
    }
}
