//! The batched, KV-cached, class-conditional sampler (the official `generate()` in `modeling/rar.py`).
//!
//! One call generates `N` tokens for a batch of classes:
//!
//! 1. the condition ids `V + 1 + class`; with guidance on (`G ≠ 0`) the batch is doubled with
//!    the "none" id, conditional rows first — both halves share the generated tokens and each
//!    row has its own cache entry;
//! 2. [`Rar::prefill`] runs `cls` and the class token; then for `s = 0 … N−1`:
//!    `ℓ = ℓ_u + g(s)(ℓ_c − ℓ_u)` with `g` from a [`GuidanceSchedule`], `ℓ/τ`, optional
//!    top-k / top-p, one categorical draw per row ([`crate::logits`]), and — except after the
//!    last token — [`Rar::step`] feeds the drawn tokens back;
//! 3. the tokens, produced in the decode order, are put back in raster order.
//!
//! The decode order is one of the paper's scan orders for the whole batch
//! ([`SamplingConfig::order`]), or a separate permutation per sample
//! ([`Sampler::sample_in_orders`]) — how the paper evaluates its random-order-only model
//! (Table 2: random-order training sampled in random orders).
//!
//! Everything stays on the device: the only host reads are the condition-id check inside
//! `prefill` and, at the very end, whatever the caller does with the returned ids.
//!
//! [`Sampler::replay`] runs the same loop with forced tokens instead of draws and returns the
//! guided logits of every step — how the parity tests check this exact code path against the
//! reference's recorded `generate()`.

use burn::tensor::{Device, Int, Tensor, TensorData};
use rar_core::{GuidanceSchedule, ScanOrder};
use rar_model::{
    DecodeCache, DecodeOrder, DecodePlan, Decoder, Rar, RarPreset, on_compute_threads,
};

use crate::error::{Result, SampleError};
use crate::logits;
use crate::requests::{RequestBatch, SampleRequest};

/// How to sample: guidance, temperature, filtering, order and cache use.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingConfig {
    /// The guidance schedule (`G = 0` switches guidance off: no unconditional batch).
    pub guidance: GuidanceSchedule,
    /// Softmax temperature `τ > 0` (the reference's `randomize_temperature`).
    pub temperature: f32,
    /// Keep only the `k` most likely tokens (off in the reference's evaluation).
    pub top_k: Option<usize>,
    /// Nucleus sampling mass `p ∈ (0, 1]` (off in the reference's evaluation).
    pub top_p: Option<f32>,
    /// The generation order (raster for the released models).
    pub order: ScanOrder,
    /// Use the KV cache (the default); without it every step re-runs the whole prefix, as the
    /// reference's `generate(kv_cache=False)` — useful only to measure what the cache saves.
    pub use_cache: bool,
}

impl SamplingConfig {
    /// The settings the authors recommend for a released model (the official code's
    /// `README_RAR.md`): power-cosine guidance `G` with power `p` and temperature `τ` —
    /// RAR-B 16 / 2.75 / 1.0, RAR-L 15.5 / 2.5 / 1.02, RAR-XL 6.9 / 1.5 / 1.02, RAR-XXL
    /// 8.0 / 1.2 / 1.02 — in raster order, no filtering, KV cache on.
    pub fn preset(preset: RarPreset) -> Self {
        let (temperature, scale, power) = match preset {
            RarPreset::B => (1.0, 16.0, 2.75),
            RarPreset::L => (1.02, 15.5, 2.5),
            RarPreset::XL => (1.02, 6.9, 1.5),
            RarPreset::XXL => (1.02, 8.0, 1.2),
        };
        Self {
            guidance: GuidanceSchedule::PowerCosine { scale, power },
            temperature,
            top_k: None,
            top_p: None,
            order: ScanOrder::RowMajor,
            use_cache: true,
        }
    }

    /// Checks every field (called by the sampler before any work).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(SampleError::InvalidRequest(m));
        if !self.temperature.is_finite() || self.temperature <= 0.0 {
            return bad(format!(
                "temperature must be finite and > 0, got {}",
                self.temperature
            ));
        }
        let g = self.guidance;
        let power = match g {
            GuidanceSchedule::PowerCosine { power, .. } => power,
            _ => 0.0,
        };
        if !g.scale().is_finite() || g.scale() < 0.0 || !power.is_finite() || power < 0.0 {
            return bad(format!(
                "guidance scale and power must be finite and ≥ 0, got {g:?}"
            ));
        }
        if self.top_k == Some(0) {
            return bad("top-k must be at least 1".into());
        }
        if let Some(p) = self.top_p
            && !(p > 0.0 && p <= 1.0)
        {
            return bad(format!("top-p must be in (0, 1], got {p}"));
        }
        Ok(())
    }
}

impl Default for SamplingConfig {
    /// RAR-B's recommended settings (G 16, p 2.75, τ 1.0), raster, cached.
    fn default() -> Self {
        Self::preset(RarPreset::B)
    }
}

/// The order a decode plan was built for (plans are cached across calls).
#[derive(Debug, Clone, PartialEq)]
enum PlanKey {
    /// One scan order shared by every row.
    Scan(ScanOrder),
    /// One permutation per sample (duplicated for the unconditional half under guidance).
    PerSample(Vec<Vec<usize>>),
}

/// Samples token grids from a [`Rar`] model, reusing decode plans and KV-cache buffers across
/// calls.
pub struct Sampler<'m> {
    model: &'m Rar,
    decoder: Decoder<'m>,
    device: Device,
    plan: Option<(PlanKey, DecodePlan)>,
    cache: Option<DecodeCache>,
}

impl<'m> Sampler<'m> {
    /// A sampler for `model` (a `&Rar`, decoding with burn's tensor ops on the model's
    /// device), or for a [`Decoder`] (e.g. [`Decoder::packed`], the host decoder with packed
    /// weights). Use a model without autodiff (e.g. `model.valid()` of a training model) so no
    /// graph is recorded.
    pub fn new(decoder: impl Into<Decoder<'m>>) -> Self {
        let decoder = decoder.into();
        let model = decoder.model();
        Self {
            model,
            decoder,
            device: model.device(),
            plan: None,
            cache: None,
        }
    }

    /// The model being sampled.
    pub fn model(&self) -> &Rar {
        self.model
    }

    /// Generates one token grid per class: `[B, N]` image codes in **raster** order.
    ///
    /// With `seed`, the device's generator is seeded first, so the same call on the same
    /// backend gives the same tokens.
    pub fn sample(
        &mut self,
        classes: &[usize],
        options: &SamplingConfig,
        seed: Option<u64>,
    ) -> Result<Tensor<2, Int>> {
        let key = PlanKey::Scan(options.order);
        self.sample_with_plan(classes, options, key, seed)
    }

    /// [`Self::sample`] with a separate generation order per sample: `orders[i]` is a
    /// permutation of the `N` raster positions, and sample `i` generates position
    /// `orders[i][s]` at step `s` (the target-aware embedding tells the model which).
    /// `options.order` is ignored. Returns `[B, N]` image codes in **raster** order.
    ///
    /// The paper samples its random-order-only model this way (random orders, Table 2);
    /// draw the permutations with `rar_core::OrderSampler` (ratio 1) for reproducibility.
    pub fn sample_in_orders(
        &mut self,
        classes: &[usize],
        orders: &[Vec<usize>],
        options: &SamplingConfig,
        seed: Option<u64>,
    ) -> Result<Tensor<2, Int>> {
        if orders.len() != classes.len() {
            return Err(SampleError::InvalidRequest(format!(
                "{} orders for {} classes: give one order per sample",
                orders.len(),
                classes.len()
            )));
        }
        let n = self.model.config().image_seq_len;
        for (i, order) in orders.iter().enumerate() {
            rar_core::scan::validate_permutation(order, n)
                .map_err(|e| SampleError::InvalidRequest(format!("order of sample {i}: {e}")))?;
        }
        let key = PlanKey::PerSample(orders.to_vec());
        self.sample_with_plan(classes, options, key, seed)
    }

    /// Draws tokens in the order of `key` and returns them in raster order.
    fn sample_with_plan(
        &mut self,
        classes: &[usize],
        options: &SamplingConfig,
        key: PlanKey,
        seed: Option<u64>,
    ) -> Result<Tensor<2, Int>> {
        if let Some(seed) = seed {
            self.device.seed(seed);
        }
        let (temperature, top_k, top_p) = (options.temperature, options.top_k, options.top_p);
        let generated = self.run(classes, options, &key, |_, guided| {
            let mut l = guided.div_scalar(temperature);
            if let Some(k) = top_k {
                l = logits::top_k(l, k);
            }
            if let Some(p) = top_p {
                l = logits::top_p(l, p);
            }
            logits::sample_categorical(l, 1.0)
        })?;
        self.to_raster(generated, &key)
    }

    /// Generates one token grid per request (`N` raster-order codes each), every request with
    /// its own settings and seed: a request's tokens do not depend on the others in the call
    /// (see [`RequestBatch`], which this runs to the end).
    pub fn sample_requests(&self, requests: &[SampleRequest]) -> Result<Vec<Vec<u32>>> {
        RequestBatch::start(self.decoder, requests.to_vec())?.finish()
    }

    /// Runs the sampling loop with `forced` tokens (`[B, N]`, in generation order) in place of
    /// the draws and returns the guided logits `[B, V]` of every step (before temperature),
    /// i.e. `ℓ_u + g(s)(ℓ_c − ℓ_u)` with guidance on and `ℓ_c` with it off.
    pub fn replay(
        &mut self,
        classes: &[usize],
        options: &SamplingConfig,
        forced: Tensor<2, Int>,
    ) -> Result<Vec<Tensor<2>>> {
        let [b, n] = forced.dims();
        let expected = self.model.config().image_seq_len;
        if b != classes.len() || n != expected {
            return Err(SampleError::InvalidRequest(format!(
                "forced tokens have shape [{b}, {n}], expected [{}, {expected}]",
                classes.len()
            )));
        }
        let mut recorded = Vec::with_capacity(n);
        let key = PlanKey::Scan(options.order);
        self.run(classes, options, &key, |s, guided| {
            recorded.push(guided);
            forced.clone().narrow(1, s, 1).squeeze_dim(1)
        })?;
        Ok(recorded)
    }

    /// The decode loop shared by [`Self::sample`] and [`Self::replay`]: returns the chosen
    /// tokens `[B, N]` in generation order.
    fn run(
        &mut self,
        classes: &[usize],
        options: &SamplingConfig,
        key: &PlanKey,
        choose: impl FnMut(usize, Tensor<2>) -> Tensor<1, Int> + Send,
    ) -> Result<Tensor<2, Int>> {
        // The whole loop on one of rayon's workers (host backends): the decode steps and the
        // small sampling operations between them then never hand work across threads.
        let device = self.device.clone();
        on_compute_threads(&device, || self.run_here(classes, options, key, choose))
    }

    /// [`Self::run`] on the calling thread.
    fn run_here(
        &mut self,
        classes: &[usize],
        options: &SamplingConfig,
        key: &PlanKey,
        mut choose: impl FnMut(usize, Tensor<2>) -> Tensor<1, Int>,
    ) -> Result<Tensor<2, Int>> {
        options.validate()?;
        let config = self.model.config().clone();
        let space = config.token_space();
        let b = classes.len();
        if b == 0 {
            return Err(SampleError::InvalidRequest("no classes to sample".into()));
        }
        let mut ids = classes
            .iter()
            .map(|&c| {
                space.class_id(c).map(|id| id as i64).map_err(|_| {
                    SampleError::InvalidRequest(format!(
                        "class {c} is not below the model's {} classes",
                        space.num_classes
                    ))
                })
            })
            .collect::<Result<Vec<i64>>>()?;
        let guided = options.guidance.is_enabled();
        if guided {
            ids.extend(std::iter::repeat_n(space.none_id() as i64, b));
        }
        let rows = ids.len();
        let condition = Tensor::<1, Int>::from_data(TensorData::new(ids, [rows]), &self.device);
        let n = config.image_seq_len;
        self.ensure_plan(key, rows)?;
        let plan = &self.plan.as_ref().expect("plan was just built").1;

        let mix = |l: Tensor<2>, s: usize| -> Tensor<2> {
            if guided {
                let cond = l.clone().narrow(0, 0, b);
                let uncond = l.narrow(0, b, b);
                logits::guide(cond, uncond, options.guidance.scale_at(s, n))
            } else {
                l
            }
        };
        let feed = |tokens: &Tensor<1, Int>| -> Tensor<1, Int> {
            if guided {
                Tensor::cat(vec![tokens.clone(), tokens.clone()], 0)
            } else {
                tokens.clone()
            }
        };

        let mut generated: Vec<Tensor<1, Int>> = Vec::with_capacity(n);
        if options.use_cache {
            let cache = match self.cache.take() {
                Some(mut c) if c.batch_size() == rows => {
                    c.reset();
                    c
                }
                _ => self.decoder.new_cache(rows),
            };
            let mut cache = cache;
            let mut l = self.decoder.prefill(condition, plan, &mut cache)?;
            for s in 0..n {
                let tokens = choose(s, mix(l, s));
                if s + 1 < n {
                    l = self.decoder.step(feed(&tokens), plan, &mut cache)?;
                } else {
                    l = Tensor::empty([0, 0], &self.device);
                }
                generated.push(tokens);
            }
            drop(l);
            self.cache = Some(cache);
        } else {
            for s in 0..n {
                let prefix = if generated.is_empty() {
                    Tensor::<2, Int>::empty([rows, 0], &self.device)
                } else {
                    let so_far = Tensor::stack::<2>(generated.clone(), 1);
                    if guided {
                        Tensor::cat(vec![so_far.clone(), so_far], 0)
                    } else {
                        so_far
                    }
                };
                let l = self.model.forward_prefix(condition.clone(), prefix, plan)?;
                generated.push(choose(s, mix(l, s)));
            }
        }
        Ok(Tensor::stack::<2>(generated, 1))
    }

    /// Builds (or reuses) the decode plan for `key` over `rows` batch rows (per-sample orders
    /// are repeated for the unconditional half when `rows` is twice their number).
    fn ensure_plan(&mut self, key: &PlanKey, rows: usize) -> Result<()> {
        let reusable = self.plan.as_ref().is_some_and(|(k, plan)| {
            k == key
                && match plan.order() {
                    DecodeOrder::Shared(_) => true,
                    DecodeOrder::PerRow(layouts) => layouts.len() == rows,
                }
        });
        if !reusable {
            let n = self.model.config().image_seq_len;
            let order = match key {
                PlanKey::Scan(scan) => DecodeOrder::scan(*scan, n)?,
                PlanKey::PerSample(orders) => DecodeOrder::per_row(
                    orders
                        .iter()
                        .cycle()
                        .take(rows)
                        .cloned()
                        .collect::<Vec<_>>(),
                )?,
            };
            let plan = self.model.decode_plan(&order)?;
            self.plan = Some((key.clone(), plan));
        }
        Ok(())
    }

    /// Puts tokens produced in the order of `key` back into raster order.
    fn to_raster(&self, generated: Tensor<2, Int>, key: &PlanKey) -> Result<Tensor<2, Int>> {
        let [b, n] = generated.dims();
        // raster[p] = generated[k] where order[k] = p, i.e. gather with the inverse order
        let inverse = |positions: &[usize]| {
            let mut inv = vec![0i64; n];
            for (k, &p) in positions.iter().enumerate() {
                inv[p] = k as i64;
            }
            inv
        };
        let index = match key {
            PlanKey::Scan(ScanOrder::RowMajor) => return Ok(generated),
            PlanKey::Scan(order) => {
                let inv = inverse(&order.positions_for_tokens(n)?);
                Tensor::<1, Int>::from_data(TensorData::new(inv, [n]), &self.device)
                    .reshape([1, n])
                    .expand([b, n])
            }
            PlanKey::PerSample(orders) => {
                let inv: Vec<i64> = orders.iter().flat_map(|o| inverse(o)).collect();
                Tensor::<2, Int>::from_data(TensorData::new(inv, [b, n]), &self.device)
            }
        };
        Ok(generated.gather(1, index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_use_the_authors_settings() {
        let xl = SamplingConfig::preset(RarPreset::XL);
        assert_eq!(
            (xl.temperature, xl.guidance),
            (
                1.02,
                GuidanceSchedule::PowerCosine {
                    scale: 6.9,
                    power: 1.5
                }
            )
        );
        assert_eq!(
            SamplingConfig::default(),
            SamplingConfig::preset(RarPreset::B)
        );
        for preset in RarPreset::ALL {
            SamplingConfig::preset(preset).validate().unwrap();
        }
    }
}
