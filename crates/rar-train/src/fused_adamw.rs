//! burn's AdamW with the update of host tensors done in one pass, and the clipping
//! coefficient applied inside it (issue #12).
//!
//! burn's [`AdamW`] is ten tensor operations per parameter, each a pass through memory with a
//! fresh output and, on flex, on one thread: about 4 % of a training step of the small
//! config. [`FusedAdamW`] keeps burn's optimizer interface and burn's state type
//! ([`AdamWState`], so saved optimizer states load either way), and for f32 tensors on flex
//! runs [`rar_kernels::adamw_update`] on the tensors' own buffers (moved out and back without
//! copies when nothing else holds them). Every other device keeps burn's `AdamW`.
//!
//! The global-norm clipping coefficient of the step is handed to the update by
//! [`with_grad_scale`] instead of being multiplied into every gradient beforehand (one pass
//! and one buffer per parameter fewer).

use std::cell::Cell;

use burn::optim::{AdamW, AdamWConfig, AdamWState, AdaptiveMomentumState, LearningRate, Optimizer};
use burn::tensor::{DType, Device, Tensor, TensorData};
use rar_kernels::{AdamWStep, adamw_update};

thread_local! {
    /// The factor every gradient is multiplied by before the update on this thread.
    static GRAD_SCALE: Cell<f32> = const { Cell::new(1.0) };
}

/// Runs `f` (an optimizer step on this thread) with every gradient multiplied by `scale`
/// inside the update: the global-norm clipping coefficient. Per thread, so clones of an
/// optimizer stepping on other threads never see it.
pub(crate) fn with_grad_scale<R>(scale: f32, f: impl FnOnce() -> R) -> R {
    struct Restore(f32);
    impl Drop for Restore {
        fn drop(&mut self) {
            GRAD_SCALE.with(|s| s.set(self.0));
        }
    }
    let _restore = Restore(GRAD_SCALE.with(|s| s.replace(scale)));
    f()
}

/// AdamW (burn's arithmetic and state) with a one-pass host update on flex.
#[derive(Clone)]
pub(crate) struct FusedAdamW {
    decomposed: AdamW,
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    weight_decay: f32,
}

impl FusedAdamW {
    pub(crate) fn new(beta_1: f32, beta_2: f32, epsilon: f32, weight_decay: f32) -> Self {
        let decomposed = AdamWConfig::new()
            .with_beta_1(beta_1)
            .with_beta_2(beta_2)
            .with_epsilon(epsilon)
            .with_weight_decay(weight_decay)
            .build();
        Self {
            decomposed,
            beta_1,
            beta_2,
            epsilon,
            weight_decay,
        }
    }
}

/// Whether the host update applies: f32 tensors of one shape on flex, without AMSGrad.
fn on_host<const D: usize>(
    tensor: &Tensor<D>,
    grad: &Tensor<D>,
    state: Option<&AdamWState<D>>,
) -> bool {
    let f32_on_flex = |t: &Tensor<D>| t.device() == Device::flex() && t.dtype() == DType::F32;
    let shape = tensor.shape();
    f32_on_flex(tensor)
        && f32_on_flex(grad)
        && grad.shape() == shape
        && state.is_none_or(|s| {
            let m = &s.momentum;
            m.max_moment_2.is_none()
                && [&m.moment_1, &m.moment_2]
                    .iter()
                    .all(|t| f32_on_flex(t) && t.shape() == shape)
        })
}

impl Optimizer for FusedAdamW {
    type State<const D: usize> = AdamWState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let scale = GRAD_SCALE.with(Cell::get);
        if !on_host(&tensor, &grad, state.as_ref()) {
            let grad = if scale == 1.0 {
                grad
            } else {
                grad.mul_scalar(scale)
            };
            return self.decomposed.step(lr, tensor, grad, state);
        }
        let (device, shape) = (tensor.device(), tensor.shape());
        let (time, m, v) = match state {
            Some(s) => (
                s.momentum.time + 1,
                s.momentum.moment_1.into_data(),
                s.momentum.moment_2.into_data(),
            ),
            None => {
                let zeros = || TensorData::new(vec![0f32; shape.num_elements()], shape.clone());
                (1, zeros(), zeros())
            }
        };
        // `into_data` moves the values out of a buffer nothing else holds (no copy).
        let (mut p, g, mut m, mut v) = (tensor.into_data(), grad.into_data(), m, v);
        let mut step = AdamWStep::new(
            lr,
            self.beta_1,
            self.beta_2,
            self.epsilon,
            self.weight_decay,
            time,
        );
        step.grad_scale = scale;
        // `on_host` checked the dtypes (f32) and that all four have one shape.
        let slice = "an f32 tensor's data holds f32 values";
        adamw_update(
            p.as_mut_slice::<f32>().expect(slice),
            g.as_slice::<f32>().expect(slice),
            m.as_mut_slice::<f32>().expect(slice),
            v.as_mut_slice::<f32>().expect(slice),
            &step,
        )
        .expect("AdamW update of tensors of one shape");
        let momentum = AdaptiveMomentumState {
            time,
            moment_1: Tensor::from_data(m, &device),
            moment_2: Tensor::from_data(v, &device),
            max_moment_2: None,
        };
        (
            Tensor::from_data(p, &device),
            Some(AdamWState::new(momentum)),
        )
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        AdamW::to_device(state, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    fn values(t: &Tensor<2>) -> Vec<f32> {
        t.to_data().try_to_vec::<f32>().unwrap()
    }

    fn rel_err(a: &[f32], b: &[f32]) -> f64 {
        let diff: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
        let norm: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
        (diff / norm).sqrt()
    }

    /// Three steps of the fused optimizer against burn's `AdamW` fed the scaled gradients,
    /// on every CPU device of the build (the host pass on flex, the fallback elsewhere):
    /// parameters and both moments agree, and the state burn saves has burn's shapes.
    #[test]
    fn fused_adamw_matches_burns_adamw_with_scaled_gradients() {
        for (name, device) in rar_testkit::cpu_devices() {
            let fused = FusedAdamW::new(0.9, 0.95, 1e-8, 0.03);
            let reference = AdamWConfig::new()
                .with_beta_1(0.9)
                .with_beta_2(0.95)
                .with_epsilon(1e-8)
                .with_weight_decay(0.03)
                .build();
            let start = Tensor::<2>::random([37, 5], Distribution::Normal(0.0, 1.0), &device);
            let (mut a, mut b) = (start.clone(), start);
            let (mut sa, mut sb) = (None, None);
            for (i, scale) in [1.0f32, 0.7, 0.25].into_iter().enumerate() {
                let grad = Tensor::<2>::random([37, 5], Distribution::Normal(0.0, 0.5), &device);
                let lr = 1e-2 * (i + 1) as f64;
                (a, sa) = with_grad_scale(scale, || fused.step(lr, a, grad.clone(), sa));
                (b, sb) = reference.step(lr, b, grad.mul_scalar(scale), sb);
            }
            let (ma, mb) = (
                &sa.as_ref().unwrap().momentum,
                &sb.as_ref().unwrap().momentum,
            );
            assert_eq!(ma.time, mb.time, "{name}");
            for (what, x, y) in [
                ("params", &a, &b),
                ("moment 1", &ma.moment_1, &mb.moment_1),
                ("moment 2", &ma.moment_2, &mb.moment_2),
            ] {
                let err = rel_err(&values(x), &values(y));
                assert!(err <= 1e-6, "{name} {what}: rel err {err:e}");
            }
        }
    }

    /// The scale is restored after the closure, also when it unwinds.
    #[test]
    fn grad_scale_is_scoped() {
        let caught = std::panic::catch_unwind(|| with_grad_scale(0.5, || panic!("inside")));
        assert!(caught.is_err());
        assert_eq!(GRAD_SCALE.with(Cell::get), 1.0);
        assert_eq!(with_grad_scale(0.5, || GRAD_SCALE.with(Cell::get)), 0.5);
    }
}
