//! The RAR generator: embeddings, positional tables, blocks, final layer and head (the official `modeling/rar.py`).
//!
//! See the crate documentation for the token space and the target-aware embedding; this
//! module implements the training-mode forward, the cache-free prefix forward, and the
//! KV-cached decode ([`Rar::prefill`] / [`Rar::step`]).

use burn::module::{Module, Param};
use burn::nn::{Embedding, Initializer, Linear};
use burn::tensor::activation::silu;
use burn::tensor::module::embedding;
use burn::tensor::{Device, Int, Tensor};

use crate::block::{RarBlock, RarBlockConfig};
use crate::cache::{DecodeOrder, DecodePlan, KvCache};
use crate::config::RarConfig;
use crate::error::{RarModelError, Result};
use crate::final_layer::FinalLayer;
use crate::init::{self, INIT_STD, TRUNC_BOUND};
use crate::loss;
use crate::orders::BatchOrders;
use crate::precision;

/// The RAR transformer (checkpoint root; field names follow the reference's `state_dict`).
#[derive(Module, Debug)]
pub struct Rar {
    /// Learned `cls` vector `[1, 1, C]` at slot 0 (its output is discarded).
    pub cls_token: Param<Tensor<3>>,
    /// Ordinary positional table `[1, N + 1024, C]`; row `2 + p` belongs to raster position
    /// `p`, rows 0 and 1 to `cls` and the class token.
    pub pos_embed: Param<Tensor<3>>,
    /// Target-aware positional table `[1, N + 1024, C]`: a slot adds the row of the token it
    /// must predict next (rows 0 and 1 are never read).
    pub target_aware_pos_embed: Param<Tensor<3>>,
    /// Per-slot "timestep" rows `[1, N + 100, C]` added to the class embedding to form the
    /// adaLN condition of each slot.
    pub timesteps_embeddings: Param<Tensor<3>>,
    /// The transformer blocks.
    pub blocks: Vec<RarBlock>,
    /// Shared embedding table `[V + 1 + K + 1, C]` for image codes and class conditions.
    pub embeddings: Embedding,
    /// Final adaLN layer (checkpoint `adaln_before_head`).
    pub adaln_before_head: FinalLayer,
    /// Output head `C → V` over the image codes only.
    pub lm_head: Linear,
    #[module(skip)]
    config: RarConfig,
}

/// Inputs of the training-mode forward pass.
#[derive(Debug, Clone)]
pub struct RarInput {
    /// Image codes in **raster** order, `[B, N]`, values in `0 … V − 1`.
    pub tokens: Tensor<2, Int>,
    /// Condition ids **already in the id space**, `[B]`: `V + 1 + class`, or the "none" id
    /// for a dropped label (see [`crate::condition`]).
    pub condition: Tensor<1, Int>,
    /// Each sample's generation order.
    pub orders: BatchOrders,
}

/// Outputs of the training-mode forward pass.
#[derive(Debug, Clone)]
pub struct RarOutput {
    /// Logits `[B, N + 1, V]` in generation order: `logits[:, k]` predicts `labels[:, k]` for
    /// `k < N`; `logits[:, N]` (after the last token) is unused by the loss.
    pub logits: Tensor<3>,
    /// The tokens in generation order, `labels[b, k] = tokens[b, order_b[k]]`, `[B, N]`.
    pub labels: Tensor<2, Int>,
}

impl RarOutput {
    /// Mean cross-entropy over all `B·N` targets (the reference's `ARLoss`), a 1-element tensor.
    pub fn loss(&self) -> Tensor<1> {
        loss::ar_loss(self.logits.clone(), self.labels.clone())
    }

    /// Cross-entropy of every target, `[B, N]` (the loss before the mean).
    pub fn token_losses(&self) -> Tensor<2> {
        loss::per_token_loss(self.logits.clone(), self.labels.clone())
    }

    /// Fraction of targets whose arg-max logit equals the label (the logged `correct_tokens`).
    pub fn accuracy(&self) -> Tensor<1> {
        loss::token_accuracy(self.logits.clone(), self.labels.clone())
    }
}

/// Intermediate activations of a forward pass, for debugging and parity checks.
#[derive(Debug, Clone)]
pub struct RarTrace {
    /// Hidden states entering the first block, `[B, N + 2, C]`.
    pub block_input: Tensor<3>,
    /// The per-slot adaLN condition `E[cond] + S[j]` (before SiLU), `[B, N + 2, C]`.
    pub condition: Tensor<3>,
    /// Output of every block, `[B, N + 2, C]` each (`cls` slot included).
    pub block_outputs: Vec<Tensor<3>>,
    /// Output of the final adaLN layer (input of the head), `[B, N + 1, C]`.
    pub final_hidden: Tensor<3>,
}

impl RarConfig {
    /// Builds a randomly initialised model exactly as the reference does (the official `modeling/rar.py`).
    ///
    /// # Panics
    ///
    /// If the configuration is invalid (see [`RarConfig::validate`]); use
    /// [`RarConfig::try_init`] to get the error instead.
    pub fn init(&self, device: &Device) -> Rar {
        match self.try_init(device) {
            Ok(model) => model,
            Err(e) => panic!("{e}"),
        }
    }

    /// Builds a randomly initialised model, or reports why the configuration is invalid.
    ///
    /// Parameters are lazy: nothing is allocated until a weight is used or overwritten by a
    /// checkpoint, so loading never materialises a throw-away random model.
    pub fn try_init(&self, device: &Device) -> Result<Rar> {
        self.validate()?;
        let c = self.hidden_size;
        let block = RarBlockConfig::new(c, self.num_heads, self.intermediate_size)
            .with_dropout(self.dropout)
            .with_attn_drop(self.attn_drop)
            .with_layer_norm_eps(self.layer_norm_eps);
        Ok(Rar {
            cls_token: Initializer::Zeros.init([1, 1, c], device),
            pos_embed: init::trunc_normal(
                [1, self.pos_embed_rows(), c],
                INIT_STD,
                TRUNC_BOUND,
                device,
            ),
            target_aware_pos_embed: init::trunc_normal(
                [1, self.pos_embed_rows(), c],
                INIT_STD,
                TRUNC_BOUND,
                device,
            ),
            timesteps_embeddings: init::trunc_normal(
                [1, self.timestep_rows(), c],
                INIT_STD,
                TRUNC_BOUND,
                device,
            ),
            blocks: (0..self.num_layers).map(|_| block.init(device)).collect(),
            embeddings: init::embedding_trunc_normal(self.vocab_size(), c, device),
            adaln_before_head: FinalLayer::new(c, self.layer_norm_eps, device),
            lm_head: init::linear_trunc_normal(c, self.codebook_size, device),
            config: self.clone(),
        })
    }
}

impl Rar {
    /// The configuration the model was built from.
    pub fn config(&self) -> &RarConfig {
        &self.config
    }

    /// The device holding the parameters.
    pub fn device(&self) -> Device {
        self.embeddings.weight.lazy_device()
    }

    /// A `[1, R, C]` table parameter as `[R, C]`.
    fn table(param: &Param<Tensor<3>>) -> Tensor<2> {
        let [_, rows, c] = param.dims();
        param.val().reshape([rows, c])
    }

    /// Embeds ids `[B, L]` through the shared table.
    fn embed(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        embedding(self.embeddings.weight.val(), ids)
    }

    /// `cls_token` repeated over the batch, `[B, 1, C]`.
    fn cls(&self, batch: usize) -> Tensor<3> {
        self.cls_token
            .val()
            .expand([batch, 1, self.config.hidden_size])
    }

    fn check_condition(&self, condition: &Tensor<1, Int>, batch: usize) -> Result<()> {
        let got = condition.dims()[0];
        if got != batch {
            return Err(RarModelError::InvalidInput(format!(
                "condition has {got} ids for a batch of {batch}"
            )));
        }
        Ok(())
    }

    /// The training-mode forward pass (paper §3.2; `modeling/rar.py`) for explicit per-sample orders.
    ///
    /// Dropout and attention dropout are active when the model is on an autodiff device and
    /// not in validation mode (`model.valid()`), as everywhere in burn. Class-label dropout is
    /// applied by the caller when building `input.condition` ([`crate::condition`]).
    pub fn forward(&self, input: RarInput) -> Result<RarOutput> {
        self.forward_impl(input, None)
    }

    /// [`Self::forward`] that also returns the intermediate activations.
    pub fn forward_traced(&self, input: RarInput) -> Result<(RarOutput, RarTrace)> {
        let mut trace = None;
        let out = self.forward_impl(input, Some(&mut trace))?;
        Ok((out, trace.expect("trace requested")))
    }

    fn forward_impl(
        &self,
        input: RarInput,
        trace: Option<&mut Option<RarTrace>>,
    ) -> Result<RarOutput> {
        let RarInput {
            tokens,
            condition,
            orders,
        } = input;
        let [b, n] = tokens.dims();
        let c = self.config.hidden_size;
        if n != self.config.image_seq_len {
            return Err(RarModelError::InvalidInput(format!(
                "tokens have {n} positions, the model is configured for image_seq_len = {}",
                self.config.image_seq_len
            )));
        }
        self.check_condition(&condition, b)?;
        if orders.batch_size() != b || orders.num_tokens() != n {
            return Err(RarModelError::InvalidInput(format!(
                "orders are for {} samples of {} tokens, tokens are [{b}, {n}]",
                orders.batch_size(),
                orders.num_tokens()
            )));
        }
        let slots = n + rar_core::target::PREFIX_SLOTS;

        // Labels are the tokens in generation order; their embeddings are the permuted
        // token embeddings.
        let labels = tokens.gather(1, orders.label_gather.clone());
        let cond = self.embed(condition.reshape([b, 1])); // [B, 1, C]
        let x = Tensor::cat(
            vec![self.cls(b), cond.clone(), self.embed(labels.clone())],
            1,
        );
        let pos = Self::table(&self.pos_embed)
            .select(0, orders.position_rows.clone())
            .reshape([b, slots, c]);
        let target = Self::table(&self.target_aware_pos_embed)
            .select(0, orders.target_rows.clone())
            .reshape([b, slots, c])
            * orders.target_present.clone();
        let x = x + pos + target;
        let timesteps = self
            .timesteps_embeddings
            .val()
            .slice([0..1, 0..slots, 0..c]);
        let condition = cond + timesteps; // [B, N + 2, C]
        let silu_c = silu(condition.clone());

        let mut block_outputs = Vec::new();
        let tracing = trace.is_some();
        let block_input = tracing.then(|| x.clone());
        let mut x = x;
        for block in &self.blocks {
            x = block.forward(x, silu_c.clone());
            if tracing {
                block_outputs.push(x.clone());
            }
        }
        // Drop `cls`: slots 1 … N + 1 give the N + 1 logits.
        let x = x.slice([0..b, 1..slots, 0..c]);
        let silu_c = silu_c.slice([0..b, 1..slots, 0..c]);
        let hidden = self.adaln_before_head.forward(x, silu_c);
        if let Some(trace) = trace {
            *trace = Some(RarTrace {
                block_input: block_input.expect("traced"),
                condition,
                block_outputs,
                final_hidden: hidden.clone(),
            });
        }
        let logits = precision::linear(&self.lm_head, hidden);
        Ok(RarOutput { logits, labels })
    }

    /// Logits `[B, V]` of the final adaLN layer and head applied to the last position of `x`.
    fn last_logits(&self, x: Tensor<3>, silu_c: Tensor<3>) -> Tensor<2> {
        let [b, l, c] = x.dims();
        let x = x.slice([0..b, l - 1..l, 0..c]);
        let silu_c = silu_c.slice([0..b, l - 1..l, 0..c]);
        let logits = precision::linear(&self.lm_head, self.adaln_before_head.forward(x, silu_c));
        logits.reshape([b, self.config.codebook_size])
    }

    /// Precomputes the per-slot positional terms of `order` for decoding (see
    /// [`DecodePlan`]). A plan can be reused for any number of batches; a per-row plan only
    /// for batches of its number of rows.
    pub fn decode_plan(&self, order: &DecodeOrder) -> Result<DecodePlan> {
        let n = self.config.image_seq_len;
        if order.num_tokens() != n {
            return Err(RarModelError::InvalidInput(format!(
                "decode order covers {} tokens, the model generates {n}",
                order.num_tokens()
            )));
        }
        let device = self.device();
        let orders = BatchOrders::new(order.layouts().to_vec(), &device)?;
        let rows = orders.batch_size();
        let slots = n + rar_core::target::PREFIX_SLOTS;
        let c = self.config.hidden_size;
        let positional = Self::table(&self.pos_embed)
            .select(0, orders.position_rows.clone())
            .reshape([rows, slots, c])
            + Self::table(&self.target_aware_pos_embed)
                .select(0, orders.target_rows.clone())
                .reshape([rows, slots, c])
                * orders.target_present.clone();
        let timesteps = self
            .timesteps_embeddings
            .val()
            .slice([0..1, 0..slots, 0..c]);
        Ok(DecodePlan {
            positional: positional.detach(),
            timesteps: timesteps.detach(),
            order: order.clone(),
        })
    }

    /// A KV cache for `batch` rows (pre-allocated for `N + 2` positions per block).
    pub fn new_cache(&self, batch: usize, device: &Device) -> KvCache {
        KvCache::new(
            self.config.num_layers,
            batch,
            self.config.num_heads,
            self.config.seq_len(),
            self.config.head_dim(),
            device,
        )
    }

    fn check_plan(&self, plan: &DecodePlan, cache: &KvCache) -> Result<()> {
        if plan.num_tokens() != self.config.image_seq_len {
            return Err(RarModelError::Cache(format!(
                "the decode plan covers {} tokens, the model generates {}",
                plan.num_tokens(),
                self.config.image_seq_len
            )));
        }
        if cache.layers.len() != self.config.num_layers || cache.capacity() != self.config.seq_len()
        {
            return Err(RarModelError::Cache(format!(
                "the cache was built for {} blocks × {} positions, the model has {} × {}",
                cache.layers.len(),
                cache.capacity(),
                self.config.num_layers,
                self.config.seq_len()
            )));
        }
        plan.check_batch(cache.batch_size())
    }

    /// First decode call: runs the `cls` and class-token slots (0 and 1), stores their keys and
    /// values, and returns the logits `[B, V]` predicting the first token of the order.
    ///
    /// `condition` holds ids already in the id space (`V + 1 + class`, or the "none" id for the
    /// unconditional half of classifier-free guidance), one per cache row. They are checked
    /// against the table size (one small host read per batch).
    pub fn prefill(
        &self,
        condition: Tensor<1, Int>,
        plan: &DecodePlan,
        cache: &mut KvCache,
    ) -> Result<Tensor<2>> {
        self.check_plan(plan, cache)?;
        let b = cache.batch_size();
        self.check_condition(&condition, b)?;
        if !cache.is_empty() {
            return Err(RarModelError::Cache(format!(
                "prefill on a cache holding {} positions: call reset() first",
                cache.len()
            )));
        }
        let vocab = self.config.vocab_size() as i64;
        let ids = condition
            .to_data()
            .try_into_vec_as::<i64>()
            .map_err(|e| RarModelError::InvalidInput(format!("condition ids: {e:?}")))?;
        if let Some(bad) = ids.iter().find(|&&id| id < 0 || id >= vocab) {
            return Err(RarModelError::InvalidInput(format!(
                "condition id {bad} is outside the embedding table (0 … {})",
                vocab - 1
            )));
        }
        let cond = self.embed(condition.reshape([b, 1])); // [B, 1, C]
        let x = Tensor::cat(vec![self.cls(b), cond.clone()], 1) + plan.positional_slots(0, 2);
        let silu_c = silu(cond.clone() + plan.timestep_slots(0, 2));
        let mut x = x;
        for (block, kv) in self.blocks.iter().zip(cache.layers.iter_mut()) {
            x = block.forward_cached(x, silu_c.clone(), kv, 0);
        }
        cache.len = 2;
        cache.condition = Some(cond);
        Ok(self.last_logits(x, silu_c))
    }

    /// One decode step: feeds the token generated at the previous step (`[B]` image codes,
    /// one per row, each `< V`), processes only its slot, and returns the logits `[B, V]`
    /// predicting the next token of the order.
    ///
    /// After `N − 1` steps all tokens but the last have been fed and the logits of every
    /// token have been produced; one further step (slot `N + 1`, the training-only last slot)
    /// is accepted, and any step beyond is an error.
    pub fn step(
        &self,
        tokens: Tensor<1, Int>,
        plan: &DecodePlan,
        cache: &mut KvCache,
    ) -> Result<Tensor<2>> {
        self.check_plan(plan, cache)?;
        let b = cache.batch_size();
        let got = tokens.dims()[0];
        if got != b {
            return Err(RarModelError::InvalidInput(format!(
                "step got {got} tokens for a cache of {b} rows"
            )));
        }
        let j = cache.len();
        let Some(cond) = cache.condition.clone() else {
            return Err(RarModelError::Cache("step before prefill".into()));
        };
        if j >= cache.capacity() {
            return Err(RarModelError::Cache(format!(
                "the cache is full: all {} positions are filled",
                cache.capacity()
            )));
        }
        let x = self.embed(tokens.reshape([b, 1])) + plan.positional_slots(j, 1);
        let silu_c = silu(cond + plan.timestep_slots(j, 1));
        let mut x = x;
        for (block, kv) in self.blocks.iter().zip(cache.layers.iter_mut()) {
            x = block.forward_cached(x, silu_c.clone(), kv, j);
        }
        cache.len += 1;
        Ok(self.last_logits(x, silu_c))
    }

    /// Cache-free decoding step: re-runs the whole prefix `[cls, class, generated…]` with the
    /// causal mask and returns the logits `[B, V]` of its last slot — what the reference's
    /// `generate(kv_cache=False)` computes at step `s = generated.dims()[1]`.
    ///
    /// `generated` `[B, s]` holds the tokens produced so far **in generation order**
    /// (`0 ≤ s ≤ N`); the plan supplies the positional terms of the order.
    pub fn forward_prefix(
        &self,
        condition: Tensor<1, Int>,
        generated: Tensor<2, Int>,
        plan: &DecodePlan,
    ) -> Result<Tensor<2>> {
        let [b, s] = generated.dims();
        self.check_condition(&condition, b)?;
        let n = self.config.image_seq_len;
        if s > n {
            return Err(RarModelError::InvalidInput(format!(
                "{s} generated tokens for a model of {n}"
            )));
        }
        if plan.num_tokens() != n {
            return Err(RarModelError::InvalidInput(format!(
                "the decode plan covers {} tokens, the model generates {n}",
                plan.num_tokens()
            )));
        }
        plan.check_batch(b)?;
        let cond = self.embed(condition.reshape([b, 1]));
        let mut parts = vec![self.cls(b), cond.clone()];
        if s > 0 {
            parts.push(self.embed(generated));
        }
        let x = Tensor::cat(parts, 1) + plan.positional_slots(0, s + 2);
        let silu_c = silu(cond + plan.timestep_slots(0, s + 2));
        let mut x = x;
        for block in &self.blocks {
            x = block.forward(x, silu_c.clone());
        }
        Ok(self.last_logits(x, silu_c))
    }
}
