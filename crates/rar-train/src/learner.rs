//! The pieces burn-train's [`Learner`](burn::train::Learner) needs for RAR:
//!
//! * [`RarLearnerModel`] — a `#[derive(Module)]` wrapper around [`Rar`] (the orphan rule keeps
//!   `TrainStep` off `Rar` itself) implementing [`TrainStep`] (orders from `r(t)`, class-label
//!   dropout, reseeded dropout masks, mean cross-entropy over `B×N`, backward) and
//!   [`InferenceStep`] (raster order, true labels); its [`TrainStep::optimize`] clips the
//!   final (accumulated) gradients to a global L2 norm before burn's AdamW step;
//! * [`RarLrScheduler`] — burn's [`LrScheduler`] for the rar-core [`WarmupCosineLr`], whose
//!   step counter is the run's **global optimizer step**, saved with `to_record` and shared
//!   with the train step;
//! * [`StepOutput`] — the train/inference step's item (loss, token accuracy).
//!
//! The parameter paths of the wrapper are those of `Rar` under `rar.`; checkpoints save the
//! inner `Rar`, so their tensor names stay the reference's.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::optim::lr_scheduler::{LrScheduler, LrSchedulerRecord};
use burn::optim::{GradientsParams, LearningRate, ModuleOptimizer, MultiGradientsParams};
use burn::tensor::{ExecutionError, Tensor};
use burn::train::{InferenceStep, ItemLazy, TrainOutput, TrainStep};
use rar_core::rng::Xoshiro256PlusPlus;
use rar_core::{OrderSampler, RandomnessSchedule, SequenceLayout, TokenSpace, WarmupCosineLr};
use rar_model::condition::{condition_tensor, drop_class_labels};
use rar_model::{BatchOrders, ComputePrecision, Rar, RarInput, with_compute_precision};

use crate::optim::clip_grad_norm_global;
use crate::source::TokenBatch;
use crate::step::scalar;

/// Stream key of the class-label-dropout uniforms (one generator per sample).
const LABEL_DROPOUT_STREAM: u64 = 0x6c61_6265_6c64;
/// Stream key of the device-RNG seeds that make the dropout masks.
const DROPOUT_STREAM: u64 = 0x6472_6f70_6f75;

/// Serialises the seeded uses of burn's process-global device RNG in this crate (model
/// initialisation, the reseeded forward passes of training, sampling).
pub(crate) static RNG_LOCK: Mutex<()> = Mutex::new(());

/// Locks [`RNG_LOCK`], ignoring poisoning (the guarded state is the device RNG, which a
/// panicking holder cannot leave half-updated in a way that matters here).
pub(crate) fn rng_guard() -> std::sync::MutexGuard<'static, ()> {
    RNG_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a problem in a step was, for the loop to report (the step traits cannot return
/// errors).
#[derive(Debug, Clone, PartialEq)]
pub enum StepFault {
    /// Building the input or the forward pass failed.
    Forward(String),
    /// The global gradient norm was NaN or infinite (the update was not applied).
    NonFiniteGradient(f64),
    /// No parameter had a gradient (the update was not applied).
    NoGradients,
}

/// Run-wide settings and state shared by every copy of the model (forks, clones) and the LR
/// scheduler. Not a parameter, not saved with the model.
#[derive(Debug)]
pub struct StepContext {
    /// The global optimizer step `t` of the update being computed (= optimizer steps done).
    step: Arc<AtomicU64>,
    seed: u64,
    randomness: RandomnessSchedule,
    orders: OrderSampler,
    class_label_dropout: f64,
    space: TokenSpace,
    max_grad_norm: f64,
    /// Factor applied to each micro-batch loss before backward so that summed gradients are
    /// the mean over the optimizer step (`1 / (accum_steps · devices)`).
    loss_scale: f64,
    precision: ComputePrecision,
    last_grad_norm: Mutex<Option<f64>>,
    fault: Mutex<Option<StepFault>>,
}

/// Settings of a [`StepContext`].
#[derive(Debug, Clone)]
pub struct StepContextSettings {
    /// Seed of orders, label dropout and dropout masks.
    pub seed: u64,
    /// The randomness schedule `r(t)`.
    pub randomness: RandomnessSchedule,
    /// Tokens per sample.
    pub image_seq_len: usize,
    /// Class-label dropout probability.
    pub class_label_dropout: f64,
    /// The model's token space.
    pub space: TokenSpace,
    /// Global gradient-norm threshold.
    pub max_grad_norm: f64,
    /// Micro-batches summed into one optimizer step (accumulation × devices).
    pub micro_batches_per_step: usize,
    /// Precision of the matrix products of the forward passes (fp32, or bf16 over fp32
    /// weights; see [`rar_model::precision`]).
    pub precision: ComputePrecision,
}

impl StepContext {
    /// A context at global step `step`.
    pub fn new(settings: StepContextSettings, step: u64) -> crate::Result<Self> {
        Ok(Self {
            step: Arc::new(AtomicU64::new(step)),
            seed: settings.seed,
            randomness: settings.randomness,
            orders: OrderSampler::raster(settings.seed, settings.image_seq_len)?,
            class_label_dropout: settings.class_label_dropout,
            space: settings.space,
            max_grad_norm: settings.max_grad_norm,
            loss_scale: 1.0 / settings.micro_batches_per_step.max(1) as f64,
            precision: settings.precision,
            last_grad_norm: Mutex::new(None),
            fault: Mutex::new(None),
        })
    }

    /// The global optimizer step of the update being computed.
    pub fn step(&self) -> u64 {
        self.step.load(Ordering::SeqCst)
    }

    /// The shared step counter (the scheduler advances it).
    pub fn step_counter(&self) -> Arc<AtomicU64> {
        self.step.clone()
    }

    /// The random-order ratio `r(t)` at step `t`.
    pub fn ratio(&self, t: u64) -> f64 {
        self.randomness.ratio(t)
    }

    /// Takes the pre-clip gradient norm of the last update.
    pub fn take_grad_norm(&self) -> Option<f64> {
        self.last_grad_norm
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Takes the fault of the last step, if any.
    pub fn take_fault(&self) -> Option<StepFault> {
        self.fault.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn set_fault(&self, fault: StepFault) {
        let mut slot = self.fault.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(fault);
        }
    }

    /// The device-RNG seed of micro-batch `k` at step `t` (dropout masks).
    pub fn dropout_seed(&self, t: u64, k: u64) -> u64 {
        Xoshiro256PlusPlus::for_stream(self.seed, &[DROPOUT_STREAM, t, k]).next_u64()
    }

    /// The training input of `batch` at step `t`: per-sample orders (random with probability
    /// `r(t)`, keyed by `(t, run position)`) and condition ids after class-label dropout (one
    /// uniform per sample from the stream `(seed, t, run position)`, so the drops do not
    /// depend on how a step is split into micro-batches).
    pub fn training_input(&self, batch: TokenBatch, t: u64) -> crate::Result<RarInput> {
        let b = batch.classes.len();
        let device = batch.tokens.device();
        let ratio = self.ratio(t);
        let layouts = self
            .orders
            .sample_batch(t, batch.first_position, b, ratio)
            .into_iter()
            .map(|o| SequenceLayout::new(o.order))
            .collect::<rar_core::Result<Vec<_>>>()?;
        let uniforms: Vec<f64> = (0..b as u64)
            .map(|i| {
                Xoshiro256PlusPlus::for_stream(
                    self.seed,
                    &[LABEL_DROPOUT_STREAM, t, batch.first_position + i],
                )
                .next_f64()
            })
            .collect();
        let ids = drop_class_labels(
            &batch.classes,
            &uniforms,
            self.class_label_dropout,
            &self.space,
        )?;
        Ok(RarInput {
            tokens: batch.tokens,
            condition: condition_tensor(&ids, &device),
            orders: BatchOrders::new(layouts, &device)?,
        })
    }

    /// The evaluation input of `batch`: raster order, true class labels.
    pub fn inference_input(&self, batch: TokenBatch) -> crate::Result<RarInput> {
        let b = batch.classes.len();
        let n = batch.tokens.dims()[1];
        let device = batch.tokens.device();
        let ids = batch
            .classes
            .iter()
            .map(|&c| self.space.class_id(c).map(|x| x as i64))
            .collect::<rar_core::Result<Vec<_>>>()?;
        Ok(RarInput {
            tokens: batch.tokens,
            condition: condition_tensor(&ids, &device),
            orders: BatchOrders::raster(b, n, &device)?,
        })
    }
}

/// The item of a train or inference step.
#[derive(Debug, Clone)]
pub struct StepOutput {
    /// Mean cross-entropy over the micro-batch's `b×N` tokens (detached, 1 element; unscaled
    /// by accumulation).
    pub loss: Tensor<1>,
    /// Token accuracy (detached, 1 element).
    pub accuracy: Tensor<1>,
    /// Samples in the micro-batch.
    pub samples: usize,
    /// Image tokens in the micro-batch.
    pub tokens: usize,
    /// Index of the micro-batch in the run ([`TokenBatch::micro_batch`]): with several
    /// devices the outputs arrive in completion order, and this puts them back in order.
    pub micro_batch: u64,
}

impl ItemLazy for StepOutput {
    fn sync(self) -> Result<Self, ExecutionError> {
        self.loss.device().flush()?;
        Ok(self)
    }
}

/// [`Rar`] as a burn-train model: see the [module docs](self).
#[derive(Module, Debug)]
pub struct RarLearnerModel {
    /// The generator (parameter paths `rar.*`).
    pub rar: Rar,
    /// Shared run context (global step, schedules, seeds, clipping threshold).
    #[module(skip)]
    ctx: Arc<StepContext>,
}

impl RarLearnerModel {
    /// Wraps `rar` with the run context `ctx`.
    pub fn new(rar: Rar, ctx: Arc<StepContext>) -> Self {
        Self { rar, ctx }
    }

    /// The run context.
    pub fn context(&self) -> &Arc<StepContext> {
        &self.ctx
    }

    /// Clips `grads` globally and applies one update with `optim` (no update, and a recorded
    /// fault, when the norm is not finite or nothing has a gradient).
    fn clip_and_step(
        self,
        optim: &mut ModuleOptimizer,
        lr: ModuleLearningRate,
        mut grads: GradientsParams,
    ) -> Self {
        let Some(norm) = clip_grad_norm_global(&self, &mut grads, self.ctx.max_grad_norm) else {
            self.ctx.set_fault(StepFault::NoGradients);
            return self;
        };
        let norm = scalar(norm);
        *self
            .ctx
            .last_grad_norm
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(norm);
        if !norm.is_finite() {
            self.ctx.set_fault(StepFault::NonFiniteGradient(norm));
            return self;
        }
        optim.step(lr, self, grads)
    }
}

/// Sums the per-device gradients of a multi-device step on each parameter's device.
struct MergeDevices<'a> {
    multi: &'a mut MultiGradientsParams,
    out: GradientsParams,
}

impl ModuleVisitor for MergeDevices<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some((grad, _)) = self.multi.remove::<D>(param.id) {
            let device = param.val().device().inner();
            self.out.register::<D>(param.id, grad.to_device(&device));
        }
    }
}

impl TrainStep for RarLearnerModel {
    type Input = TokenBatch;
    type Output = StepOutput;

    /// Forward and backward of one micro-batch at the global step `t` read from the shared
    /// counter: orders from `r(t)`, class-label dropout, dropout masks from the device RNG
    /// reseeded with `(seed, t, micro-batch)` under the crate's RNG lock, mean cross-entropy
    /// (scaled by `1 / micro-batches per step` for the backward pass).
    fn step(&self, batch: TokenBatch) -> TrainOutput<StepOutput> {
        let t = self.ctx.step();
        let k = batch.micro_batch;
        let samples = batch.classes.len();
        let tokens = batch.tokens.dims().iter().product();
        let device = batch.tokens.device();
        let failed = |msg: String, ctx: &StepContext| {
            log::error!("train step {t}: {msg}");
            ctx.set_fault(StepFault::Forward(msg));
            let zero = Tensor::<1>::zeros([1], &device.clone().inner());
            TrainOutput {
                grads: GradientsParams::new(),
                item: StepOutput {
                    loss: zero.clone().add_scalar(f64::NAN),
                    accuracy: zero,
                    samples,
                    tokens,
                    micro_batch: k,
                },
            }
        };
        let input = match self.ctx.training_input(batch, t) {
            Ok(input) => input,
            Err(e) => return failed(e.to_string(), &self.ctx),
        };
        let out = {
            let _guard = rng_guard();
            device.seed(self.ctx.dropout_seed(t, k));
            // The setting is per thread: each multi-device worker sets its own.
            with_compute_precision(self.ctx.precision, || self.rar.forward(input))
        };
        let out = match out {
            Ok(out) => out,
            Err(e) => return failed(e.to_string(), &self.ctx),
        };
        let loss = out.loss();
        let accuracy = out.accuracy().detach();
        let scaled = if self.ctx.loss_scale == 1.0 {
            loss.clone()
        } else {
            loss.clone().mul_scalar(self.ctx.loss_scale)
        };
        let grads = scaled.backward();
        TrainOutput {
            grads: GradientsParams::from_grads(grads, self),
            item: StepOutput {
                loss: loss.detach(),
                accuracy,
                samples,
                tokens,
                micro_batch: k,
            },
        }
    }

    /// Global-norm clipping of the final (accumulated) gradients, then burn's AdamW step.
    fn optimize(
        self,
        optim: &mut ModuleOptimizer,
        lr: ModuleLearningRate,
        grads: GradientsParams,
    ) -> Self {
        self.clip_and_step(optim, lr, grads)
    }

    /// Sums the devices' gradients on each parameter's device, then as [`Self::optimize`].
    fn optimize_multi(
        self,
        optim: &mut ModuleOptimizer,
        lr: ModuleLearningRate,
        mut grads: MultiGradientsParams,
    ) -> Self {
        let mut merge = MergeDevices {
            multi: &mut grads,
            out: GradientsParams::new(),
        };
        self.visit(&mut merge);
        let merged = merge.out;
        self.clip_and_step(optim, lr, merged)
    }
}

impl InferenceStep for RarLearnerModel {
    type Input = TokenBatch;
    type Output = StepOutput;

    /// Loss and accuracy in raster order with the true labels (use a `valid()` model).
    fn step(&self, batch: TokenBatch) -> StepOutput {
        let samples = batch.classes.len();
        let tokens = batch.tokens.dims().iter().product();
        let device = batch.tokens.device();
        let micro_batch = batch.micro_batch;
        let out = self.ctx.inference_input(batch).and_then(|input| {
            Ok(with_compute_precision(self.ctx.precision, || {
                self.rar.forward(input)
            })?)
        });
        match out {
            Ok(out) => StepOutput {
                loss: out.loss().detach(),
                accuracy: out.accuracy().detach(),
                samples,
                tokens,
                micro_batch,
            },
            Err(e) => {
                log::error!("inference step: {e}");
                let zero = Tensor::<1>::zeros([1], &device);
                StepOutput {
                    loss: zero.clone().add_scalar(f64::NAN),
                    accuracy: zero,
                    samples,
                    tokens,
                    micro_batch,
                }
            }
        }
    }
}

/// burn's [`LrScheduler`] for the warm-up + cosine schedule of rar-core.
///
/// Its counter is the number of optimizer steps done: [`LrScheduler::step`] returns
/// `lr(t)` for the 0-based step `t` about to be applied and then publishes `t + 1` to the
/// shared step counter of the train step. Publishing is a store, not an increment, so the
/// per-device scheduler copies of burn's DDP strategy agree. The counter is saved by
/// `to_record` (`"step"`) and restored by `load_record`.
#[derive(Clone)]
pub struct RarLrScheduler {
    schedule: WarmupCosineLr,
    step: u64,
    shared: Arc<AtomicU64>,
}

impl RarLrScheduler {
    /// A scheduler at optimizer step `step` publishing to `shared`.
    pub fn new(schedule: WarmupCosineLr, step: u64, shared: Arc<AtomicU64>) -> Self {
        shared.store(step, Ordering::SeqCst);
        Self {
            schedule,
            step,
            shared,
        }
    }

    /// Optimizer steps done.
    pub fn steps_done(&self) -> u64 {
        self.step
    }
}

impl LrScheduler for RarLrScheduler {
    fn step(&mut self) -> LearningRate {
        let lr = self.schedule.lr_at(self.step);
        self.step += 1;
        self.shared.store(self.step, Ordering::SeqCst);
        lr
    }

    fn to_record(&self) -> LrSchedulerRecord {
        LrSchedulerRecord::new().with_scalar("step", self.step)
    }

    fn load_record(&mut self, record: LrSchedulerRecord) {
        if let Some(step) = record.scalar::<u64>("step") {
            self.step = step;
            self.shared.store(step, Ordering::SeqCst);
        }
    }
}

/// The step stored in a scheduler record: the Learner's (`ModuleLrScheduler`) record nests
/// [`RarLrScheduler`]'s under the group `"0"`; a bare `RarLrScheduler` record is read too.
pub fn scheduler_record_step(record: &LrSchedulerRecord) -> Option<u64> {
    record
        .record("0")
        .scalar::<u64>("step")
        .or_else(|| record.scalar::<u64>("step"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_counts_optimizer_steps_and_round_trips() {
        let schedule = WarmupCosineLr::new(1.0, 0.0, 2, 10).unwrap();
        let shared = Arc::new(AtomicU64::new(0));
        let mut s = RarLrScheduler::new(schedule, 0, shared.clone());
        let lrs: Vec<f64> = (0..3).map(|_| s.step()).collect();
        assert_eq!(lrs, [0, 1, 2].map(|t| schedule.lr_at(t)));
        assert_eq!(shared.load(Ordering::SeqCst), 3);
        let record = s.to_record();
        let other = Arc::new(AtomicU64::new(0));
        let mut t = RarLrScheduler::new(schedule, 0, other.clone());
        t.load_record(record);
        assert_eq!(other.load(Ordering::SeqCst), 3);
        assert_eq!(t.step(), schedule.lr_at(3));
    }
}
