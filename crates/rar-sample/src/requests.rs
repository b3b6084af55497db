//! Sampling a batch of independent requests: each image has its own class, guidance,
//! temperature, filtering and seed, and its tokens do not depend on what else is in the batch.
//!
//! [`crate::Sampler::sample`] draws on the device with the device's generator, one stream for
//! the whole batch, so an image depends on its batch-mates and on the row it landed in. A
//! server that merges concurrent requests into one KV-cached batch needs the opposite: the
//! same request with the same seed gives the same image whether it ran alone or beside
//! fifteen others. [`RequestBatch`] therefore reads the guided logits `[B, V]` to the host at
//! every step (a few kB; the step itself dominates on every backend) and draws each row from
//! its own [`Xoshiro256PlusPlus`] stream seeded by the request — exactly
//! `softmax(ℓ/τ)` after optional top-k / top-p, by inverse-CDF in f64.
//!
//! The batch is a state machine so a caller can act between steps: look at the tokens so far
//! ([`RequestBatch::tokens`], for a partial preview), or drop requests that are no longer
//! wanted ([`RequestBatch::retain`], which shrinks the KV cache so later steps compute only
//! the rows left).
//!
//! Generation is in raster order (the released models' order). Under guidance the cache holds
//! the conditional rows of every request, then one unconditional row per guided request (a
//! request with guidance off uses its conditional logits and costs one row).

use burn::tensor::{Int, Tensor, TensorData};
use rar_core::GuidanceSchedule;
use rar_core::rng::Xoshiro256PlusPlus;
use rar_model::{DecodeCache, DecodeOrder, DecodePlan, Decoder};

use crate::error::{Result, SampleError};
use crate::sampler::SamplingConfig;

/// One image to generate: its class, how to sample it, and the seed of its own draw stream.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleRequest {
    /// Class index (`< num_classes`).
    pub class: usize,
    /// Guidance schedule (`G = 0`: no unconditional row for this request).
    pub guidance: GuidanceSchedule,
    /// Softmax temperature `τ > 0`.
    pub temperature: f32,
    /// Keep only the `k` most likely tokens.
    pub top_k: Option<usize>,
    /// Nucleus mass `p ∈ (0, 1]`.
    pub top_p: Option<f32>,
    /// Seed of this request's draws: the same seed gives the same tokens in any batch.
    pub seed: u64,
}

impl SampleRequest {
    /// A request for `class` with the settings of `options` (its order and cache flag are not
    /// used: requests are always decoded in raster order with the KV cache).
    pub fn new(class: usize, options: &SamplingConfig, seed: u64) -> Self {
        Self {
            class,
            guidance: options.guidance,
            temperature: options.temperature,
            top_k: options.top_k,
            top_p: options.top_p,
            seed,
        }
    }

    /// What is wrong with this request for a model of `num_classes` classes, in words that
    /// name the field (`Ok` when nothing is).
    pub fn check(&self, num_classes: usize) -> std::result::Result<(), String> {
        if let Err(e) = self.options().validate() {
            return Err(match e {
                SampleError::InvalidRequest(message) => message,
                other => other.to_string(),
            });
        }
        if self.class >= num_classes {
            return Err(format!(
                "class {} is not below the model's {num_classes} classes",
                self.class
            ));
        }
        Ok(())
    }

    /// The request's settings as a [`SamplingConfig`] (raster, cached).
    pub fn options(&self) -> SamplingConfig {
        SamplingConfig {
            guidance: self.guidance,
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            ..SamplingConfig::default()
        }
    }
}

/// The per-request state of a running batch.
#[derive(Debug, Clone)]
struct Row {
    request: SampleRequest,
    rng: Xoshiro256PlusPlus,
    /// Tokens drawn so far, in raster order.
    tokens: Vec<u32>,
}

/// A batch of [`SampleRequest`]s being decoded step by step (see the module docs).
pub struct RequestBatch<'m> {
    decoder: Decoder<'m>,
    plan: DecodePlan,
    cache: DecodeCache,
    rows: Vec<Row>,
    /// Logits `[R, V]` for the next draw (`None` once every token is drawn).
    logits: Option<Tensor<2>>,
    num_tokens: usize,
}

impl<'m> RequestBatch<'m> {
    /// Checks every request, allocates the cache and runs the prefill (the class tokens).
    /// `decoder` is a `&Rar` (burn's tensor ops) or a [`Decoder`] such as
    /// [`Decoder::packed`].
    pub fn start(decoder: impl Into<Decoder<'m>>, requests: Vec<SampleRequest>) -> Result<Self> {
        let decoder = decoder.into();
        let model = decoder.model();
        if requests.is_empty() {
            return Err(SampleError::InvalidRequest("no requests to sample".into()));
        }
        let config = model.config();
        let space = config.token_space();
        for (i, r) in requests.iter().enumerate() {
            r.check(space.num_classes)
                .map_err(|m| SampleError::InvalidRequest(format!("request {i}: {m}")))?;
        }
        let device = model.device();
        let rows: Vec<Row> = requests
            .into_iter()
            .map(|request| Row {
                rng: Xoshiro256PlusPlus::seed_from_u64(request.seed),
                request,
                tokens: Vec::new(),
            })
            .collect();
        let mut ids: Vec<i64> = Vec::with_capacity(2 * rows.len());
        for row in &rows {
            let id = space.class_id(row.request.class).map_err(|e| {
                SampleError::InvalidRequest(format!("class {}: {e}", row.request.class))
            })?;
            ids.push(id as i64);
        }
        let guided = rows.iter().filter(|r| r.request.guidance.is_enabled());
        ids.extend(guided.map(|_| space.none_id() as i64));
        let n = config.image_seq_len;
        let plan = model.decode_plan(&DecodeOrder::raster(n)?)?;
        let mut cache = decoder.new_cache(ids.len());
        let len = ids.len();
        let condition = Tensor::<1, Int>::from_data(TensorData::new(ids, [len]), &device);
        let logits = decoder.prefill(condition, &plan, &mut cache)?;
        Ok(Self {
            decoder,
            plan,
            cache,
            rows,
            logits: Some(logits),
            num_tokens: n,
        })
    }

    /// The cache row of each request's unconditional half: guided requests, in order, after
    /// the conditional rows of all requests (`None` for a request with guidance off).
    fn unconditional_rows(&self) -> Vec<Option<usize>> {
        let mut next = self.rows.len();
        self.rows
            .iter()
            .map(|row| {
                row.request.guidance.is_enabled().then(|| {
                    next += 1;
                    next - 1
                })
            })
            .collect()
    }

    /// Number of requests still in the batch.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether no request is left.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Rows of the KV cache (requests plus the unconditional rows of the guided ones).
    pub fn cache_rows(&self) -> usize {
        self.cache.batch_size()
    }

    /// Tokens drawn so far per request (the same for every request).
    pub fn steps_done(&self) -> usize {
        self.rows
            .first()
            .map_or(self.num_tokens, |r| r.tokens.len())
    }

    /// Tokens per image (`N`).
    pub fn num_tokens(&self) -> usize {
        self.num_tokens
    }

    /// Whether every token of every request has been drawn.
    pub fn is_done(&self) -> bool {
        self.logits.is_none()
    }

    /// The requests in the batch, in their current order.
    pub fn requests(&self) -> impl Iterator<Item = &SampleRequest> {
        self.rows.iter().map(|r| &r.request)
    }

    /// The raster-order tokens drawn so far for request `index` (of the current order).
    pub fn tokens(&self, index: usize) -> &[u32] {
        &self.rows[index].tokens
    }

    /// Draws one token for every request and, unless it was the last, feeds them back.
    /// Returns whether the batch is now done.
    pub fn step(&mut self) -> Result<bool> {
        let Some(logits) = self.logits.take() else {
            return Ok(true);
        };
        let [_, v] = logits.dims();
        let host = logits.into_data().try_to_vec::<f32>().map_err(|e| {
            SampleError::InvalidRequest(format!("reading the step's logits: {e:?}"))
        })?;
        let s = self.steps_done();
        let unconditional = self.unconditional_rows();
        let mut scratch = vec![0f32; v];
        for (i, row) in self.rows.iter_mut().enumerate() {
            let cond = &host[i * v..(i + 1) * v];
            if let Some(u) = unconditional[i] {
                let uncond = &host[u * v..(u + 1) * v];
                let g = row.request.guidance.scale_at(s, self.num_tokens);
                for ((out, &c), &u) in scratch.iter_mut().zip(cond).zip(uncond) {
                    *out = u + (c - u) * g;
                }
            } else {
                scratch.copy_from_slice(cond);
            }
            let token = draw(&mut scratch, &row.request, &mut row.rng).ok_or_else(|| {
                SampleError::InvalidRequest(format!(
                    "the model's logits for request {i} (class {}) at step {s} are not finite",
                    row.request.class
                ))
            })?;
            row.tokens.push(token as u32);
        }
        if s + 1 < self.num_tokens {
            // the drawn token goes to the request's conditional and unconditional rows
            let mut fed: Vec<i64> = self.rows.iter().map(|r| r.tokens[s] as i64).collect();
            fed.extend(
                self.rows
                    .iter()
                    .zip(&unconditional)
                    .filter(|(_, u)| u.is_some())
                    .map(|(r, _)| r.tokens[s] as i64),
            );
            let device = self.decoder.model().device();
            let len = fed.len();
            let fed = Tensor::<1, Int>::from_data(TensorData::new(fed, [len]), &device);
            self.logits = Some(self.decoder.step(fed, &self.plan, &mut self.cache)?);
        }
        Ok(self.logits.is_none())
    }

    /// Keeps the requests for which `keep(index, request)` is true (in order) and frees the
    /// others' cache rows. Returns the indices (of the old order) that were kept. Keeping none
    /// ends the batch.
    pub fn retain(&mut self, mut keep: impl FnMut(usize, &SampleRequest) -> bool) -> Vec<usize> {
        let kept: Vec<usize> = (0..self.rows.len())
            .filter(|&i| keep(i, &self.rows[i].request))
            .collect();
        if kept.len() == self.rows.len() {
            return kept;
        }
        if kept.is_empty() {
            self.rows.clear();
            self.logits = None;
            return kept;
        }
        let b = self.rows.len();
        let unconditional = self.unconditional_rows();
        let mut cache_rows: Vec<usize> = kept.clone();
        cache_rows.extend(kept.iter().filter_map(|&i| unconditional[i]));
        self.cache
            .retain_rows(&cache_rows)
            .expect("rows of a live batch are valid cache rows");
        if let Some(logits) = self.logits.take() {
            let device = logits.device();
            let len = cache_rows.len();
            let index = cache_rows.iter().map(|&i| i as i64).collect::<Vec<_>>();
            let index = Tensor::<1, Int>::from_data(TensorData::new(index, [len]), &device);
            self.logits = Some(logits.select(0, index));
        }
        let mut keep_row = vec![false; b];
        kept.iter().for_each(|&i| keep_row[i] = true);
        let old = std::mem::take(&mut self.rows);
        self.rows = old
            .into_iter()
            .zip(keep_row)
            .filter_map(|(row, keep)| keep.then_some(row))
            .collect();
        kept
    }

    /// Runs the remaining steps and returns every request's `N` raster-order tokens.
    pub fn finish(mut self) -> Result<Vec<Vec<u32>>> {
        while !self.step()? {}
        Ok(self.rows.into_iter().map(|r| r.tokens).collect())
    }
}

/// Draws one token from `softmax(ℓ/τ)` after the request's top-k / top-p, consuming one
/// uniform of `rng`. `logits` is overwritten. `None` when the logits are not finite.
fn draw(
    logits: &mut [f32],
    request: &SampleRequest,
    rng: &mut Xoshiro256PlusPlus,
) -> Option<usize> {
    let v = logits.len();
    let inv_t = 1.0 / request.temperature;
    for l in logits.iter_mut() {
        *l *= inv_t;
    }
    if logits.iter().any(|l| !l.is_finite()) {
        return None;
    }
    if let Some(k) = request.top_k.filter(|&k| k < v) {
        // keep every logit ≥ the k-th largest (ties at the threshold are all kept)
        let mut sorted = logits.to_vec();
        sorted.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
        let kth = sorted[k - 1];
        for l in logits.iter_mut() {
            if *l < kth {
                *l = f32::NEG_INFINITY;
            }
        }
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut weights: Vec<f64> = logits.iter().map(|&l| ((l - max) as f64).exp()).collect();
    if let Some(p) = request.top_p.filter(|&p| p < 1.0) {
        // drop a token once the mass strictly before it (in descending order) reaches p
        let total: f64 = weights.iter().sum();
        let mut order: Vec<usize> = (0..v).collect();
        order.sort_by(|&a, &b| weights[b].total_cmp(&weights[a]).then(a.cmp(&b)));
        let mut before = 0.0;
        for &i in &order {
            let w = weights[i];
            if before / total >= p as f64 {
                weights[i] = 0.0;
            }
            before += w;
        }
    }
    let total: f64 = weights.iter().sum();
    let target = rng.next_f64() * total;
    let mut acc = 0.0;
    let mut last = 0;
    for (i, &w) in weights.iter().enumerate() {
        if w > 0.0 {
            acc += w;
            last = i;
            if target < acc {
                return Some(i);
            }
        }
    }
    Some(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(temperature: f32, top_k: Option<usize>, top_p: Option<f32>) -> SampleRequest {
        SampleRequest {
            class: 0,
            guidance: GuidanceSchedule::off(),
            temperature,
            top_k,
            top_p,
            seed: 0,
        }
    }

    #[test]
    fn draws_follow_the_softmax() {
        let probs = [0.1f64, 0.2, 0.3, 0.4];
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(9);
        let n = 20_000;
        let mut counts = [0usize; 4];
        for _ in 0..n {
            // temperature 2 undoes the ×2
            let mut l: Vec<f32> = probs.iter().map(|p| (p.ln() * 2.0) as f32).collect();
            counts[draw(&mut l, &request(2.0, None, None), &mut rng).unwrap()] += 1;
        }
        for (c, p) in counts.iter().zip(probs) {
            let f = *c as f64 / n as f64;
            // 4 standard deviations of a binomial share
            assert!(
                (f - p).abs() < 4.0 * (p * (1.0 - p) / n as f64).sqrt(),
                "{counts:?}"
            );
        }
    }

    #[test]
    fn filters_keep_the_right_tokens() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        for _ in 0..200 {
            // top-k 2 of [0.1, 3, 2, −1] keeps tokens 1 and 2
            let mut l = vec![0.1f32, 3.0, 2.0, -1.0];
            let t = draw(&mut l, &request(1.0, Some(2), None), &mut rng).unwrap();
            assert!(t == 1 || t == 2);
            // softmax ≈ [0.017, 0.017, 0.017, 0.95]: top-p 0.9 keeps only token 3
            let mut l = vec![1.0f32, 1.0, 1.0, 5.0];
            assert_eq!(
                draw(&mut l, &request(1.0, None, Some(0.9)), &mut rng),
                Some(3)
            );
        }
        let mut l = vec![0.0f32, f32::NAN];
        assert_eq!(draw(&mut l, &request(1.0, None, None), &mut rng), None);
    }
}
