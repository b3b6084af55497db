//! The gated residual of an adaLN block for training, `out = x + gate ⊙ y` (DiT's adaLN
//! gates, RAR paper §3.2; gate and branch output are both per token), and its backward.
//!
//! As burn operations it is a product and a sum forward, two products backward: four passes
//! through memory, each on one thread for the `[B·L, C]` tensors of a training step (burn-flex
//! splits element-wise work only above 4 M values), eight times per step of the small config.
//! Here each direction is one pass, split over rayon's threads.

use rayon::prelude::*;

use std::mem::MaybeUninit;

use crate::activation::{as_uninit, check_len};
use crate::error::Result;
use crate::isa::with_simd;

/// Values below which a pass stays on the calling thread.
const PARALLEL_MIN_VALUES: usize = 1 << 15;
/// Values per rayon task.
const TASK_VALUES: usize = 1 << 14;

/// `out = x + gate ⊙ y`, element by element (all four of one length).
pub fn gated_residual_forward(x: &[f32], gate: &[f32], y: &[f32], out: &mut [f32]) -> Result<()> {
    gated_residual_forward_uninit(x, gate, y, as_uninit(out))
}

/// [`gated_residual_forward`] into a buffer not yet initialised (every value of `out` is
/// written when the lengths agree).
pub fn gated_residual_forward_uninit(
    x: &[f32],
    gate: &[f32],
    y: &[f32],
    out: &mut [MaybeUninit<f32>],
) -> Result<()> {
    check_len(
        "gated_residual_forward",
        &[("gate", gate.len()), ("y", y.len()), ("out", out.len())],
        x.len(),
    )?;
    let body = |x: &[f32], gate: &[f32], y: &[f32], out: &mut [MaybeUninit<f32>]| {
        with_simd(
            #[inline(always)]
            || {
                for (((o, &x), &g), &y) in out.iter_mut().zip(x).zip(gate).zip(y) {
                    // No fused multiply-add (Rust never contracts `x + g·y`): the values of
                    // burn's separate product and sum, bit for bit.
                    o.write(x + g * y);
                }
            },
        )
    };
    if x.len() >= PARALLEL_MIN_VALUES {
        out.par_chunks_mut(TASK_VALUES)
            .zip(x.par_chunks(TASK_VALUES))
            .zip(gate.par_chunks(TASK_VALUES))
            .zip(y.par_chunks(TASK_VALUES))
            .for_each(|(((out, x), gate), y)| body(x, gate, y, out));
    } else {
        body(x, gate, y, out);
    }
    Ok(())
}

/// The gradients of [`gated_residual_forward`] with respect to the gate and the branch:
/// `grad_gate = grad ⊙ y`, `grad_y = grad ⊙ gate` (that of `x` is `grad` itself).
pub fn gated_residual_backward(
    grad: &[f32],
    gate: &[f32],
    y: &[f32],
    grad_gate: &mut [f32],
    grad_y: &mut [f32],
) -> Result<()> {
    gated_residual_backward_uninit(grad, gate, y, as_uninit(grad_gate), as_uninit(grad_y))
}

/// [`gated_residual_backward`] into buffers not yet initialised (every value of both is
/// written when the lengths agree).
pub fn gated_residual_backward_uninit(
    grad: &[f32],
    gate: &[f32],
    y: &[f32],
    grad_gate: &mut [MaybeUninit<f32>],
    grad_y: &mut [MaybeUninit<f32>],
) -> Result<()> {
    check_len(
        "gated_residual_backward",
        &[
            ("gate", gate.len()),
            ("y", y.len()),
            ("grad_gate", grad_gate.len()),
            ("grad_y", grad_y.len()),
        ],
        grad.len(),
    )?;
    let body = |grad: &[f32],
                gate: &[f32],
                y: &[f32],
                dg: &mut [MaybeUninit<f32>],
                dy: &mut [MaybeUninit<f32>]| {
        with_simd(
            #[inline(always)]
            || {
                for ((((dg, dy), &g), &gate), &y) in
                    dg.iter_mut().zip(dy.iter_mut()).zip(grad).zip(gate).zip(y)
                {
                    dg.write(g * y);
                    dy.write(g * gate);
                }
            },
        )
    };
    if grad.len() >= PARALLEL_MIN_VALUES {
        grad_gate
            .par_chunks_mut(TASK_VALUES)
            .zip(grad_y.par_chunks_mut(TASK_VALUES))
            .zip(grad.par_chunks(TASK_VALUES))
            .zip(gate.par_chunks(TASK_VALUES))
            .zip(y.par_chunks(TASK_VALUES))
            .for_each(|((((dg, dy), grad), gate), y)| body(grad, gate, y, dg, dy));
    } else {
        body(grad, gate, y, grad_gate, grad_y);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, s: f32) -> Vec<f32> {
        (0..n).map(|i| (i as f32 * s).sin()).collect()
    }

    /// Both passes against their definitions, below and above the parallel size (so the
    /// split into tasks, with a partial last task, is covered), and wrong lengths refused.
    #[test]
    fn forward_and_backward_match_the_definition() {
        for n in [37, PARALLEL_MIN_VALUES + 5 * TASK_VALUES / 3] {
            let (x, gate, y, grad) = (data(n, 0.3), data(n, 0.7), data(n, 1.1), data(n, 0.9));
            let mut out = vec![0f32; n];
            gated_residual_forward(&x, &gate, &y, &mut out).unwrap();
            let (mut dg, mut dy) = (vec![0f32; n], vec![0f32; n]);
            gated_residual_backward(&grad, &gate, &y, &mut dg, &mut dy).unwrap();
            for i in 0..n {
                assert_eq!(out[i], x[i] + gate[i] * y[i], "out {i} of {n}");
                assert_eq!(dg[i], grad[i] * y[i], "grad_gate {i} of {n}");
                assert_eq!(dy[i], grad[i] * gate[i], "grad_y {i} of {n}");
            }
        }
        let mut out = vec![0f32; 3];
        let err = gated_residual_forward(&[0.0; 3], &[0.0; 2], &[0.0; 3], &mut out).unwrap_err();
        assert!(err.to_string().contains("`gate` holds 2"), "{err}");
    }
}
