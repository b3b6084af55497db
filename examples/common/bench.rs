//! Timed pieces shared by the throughput examples (`train_bench`, `sample_bench`,
//! `gpu_check`): one optimizer step and one sampled batch, each timed until its result is on
//! the host (reading a value back waits for every queued kernel of an asynchronous device).

use anyhow::Result;
use rar::model::{ComputePrecision, Rar, RarInput, with_compute_precision};
use rar::sample::{Sampler, SamplingConfig};
use rar::train::{RarOptimizer, UpdateStats, forward_backward};
use std::time::Instant;

/// What one timed optimizer step returned.
pub struct TimedStep {
    /// The updated model.
    pub model: Rar,
    /// Wall time of forward, backward and update, in seconds.
    pub seconds: f64,
    /// The step's loss.
    pub loss: f32,
    /// Gradient norm and learning rate of the update.
    pub stats: UpdateStats,
}

/// One full optimizer step (forward, backward, global-norm clip, AdamW) of `model` on `input`
/// with the products in `precision`. The update reads the gradient norm back, so the clock
/// stops after the step has finished on the device. `model` is taken, not borrowed: with
/// nothing else holding its parameters the update writes them in place (a caller that keeps
/// a clone makes every parameter a copy, as PyTorch's in-place `optimizer.step()` does not).
pub fn train_step(
    model: Rar,
    optim: &mut RarOptimizer,
    input: RarInput,
    precision: ComputePrecision,
) -> Result<TimedStep> {
    let start = Instant::now();
    let (loss, (model, stats)) = with_compute_precision(precision, || -> Result<_> {
        let pass = forward_backward(&model, input, 1.0)?;
        let loss = pass.loss.clone().into_scalar::<f32>();
        Ok((loss, optim.update(model, pass.grads)?))
    })?;
    Ok(TimedStep {
        model,
        seconds: start.elapsed().as_secs_f64(),
        loss,
        stats,
    })
}

/// Seconds to sample one batch of `classes` (token generation only; the ids are read back,
/// which waits for the whole computation).
pub fn time_sampling(
    sampler: &mut Sampler,
    classes: &[usize],
    options: &SamplingConfig,
    seed: u64,
) -> Result<f64> {
    let start = Instant::now();
    let tokens = sampler.sample(classes, options, Some(seed))?;
    let _ = tokens.into_data();
    Ok(start.elapsed().as_secs_f64())
}

/// The CPU kernel levels in use, for a benchmark's header: `gemm`'s for flex's matrix products
/// and rar-kernels' for the fused kernels (capped by `RAR_KERNELS_ISA`). Figures from
/// different levels are not comparable; `benches/compare.py --isa avx2` reads this line.
pub fn cpu_kernels() -> String {
    format!(
        "cpu kernels: products {}; fused kernels {}",
        rar::model::CpuProducts::detect(),
        rar::kernels::Isa::active().name()
    )
}
