//! The reference optimizer (the official `utils/train_utils.py`): AdamW with two parameter
//! groups and global-norm gradient clipping.
//!
//! * **Weight-decay groups.** A parameter is *not* decayed when its tensor has fewer than two
//!   dimensions or its reference checkpoint key contains any of [`NO_DECAY_SUBSTRINGS`]
//!   (case-sensitive). For RAR this keeps the quirks of the reference: `cls_token` (3-D, no
//!   matching substring) **is** decayed, `adaln_before_head.adaLN_modulation.1.weight` is
//!   **not** (lowercase `adaln` contains `ln`), while the blocks' `adaLN_modulation.1.weight`
//!   are (uppercase `LN` does not match).
//! * **AdamW.** burn's AdamW arithmetic and state per parameter (β₁ 0.9, β₂ 0.96, eps 1e-8,
//!   decoupled decay `p ← p·(1 − lr·wd)`), one pass on the host for flex tensors
//!   ([`crate::fused_adamw`]), routed through burn's [`ModuleOptimizer::with_group`]: the
//!   decayed group uses `wd = 0.03`, the other `wd = 0`. Groups are matched by module path,
//!   so they survive a resume.
//! * **Clipping.** All gradients are scaled together so that their global L2 norm is at most
//!   `max_norm` (`torch.nn.utils.clip_grad_norm_`; burn's built-in clipping works per
//!   tensor): [`global_grad_norm`] and [`clip_coefficient`], the factor applied inside the
//!   update.

use burn::config::Config;
use burn::module::{Module, ModuleVisitor, Param, ParamGroup};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{DType, Device, Tensor};
use rar_kernels::sum_of_squares;
use rar_model::reference_keys;

use crate::fused_adamw::FusedAdamW;

/// Substrings of a checkpoint key that put the parameter in the no-decay group
/// (`utils/train_utils.create_optimizer` of the reference).
pub const NO_DECAY_SUBSTRINGS: [&str; 8] = [
    "ln",
    "bias",
    "latent_tokens",
    "mask_token",
    "embedding",
    "norm",
    "gamma",
    "embed",
];

/// Whether the reference decays the parameter with checkpoint key `key` and `ndim` dimensions.
pub fn is_decayed(key: &str, ndim: usize) -> bool {
    ndim >= 2 && !NO_DECAY_SUBSTRINGS.iter().any(|s| key.contains(s))
}

/// One parameter of a model with its module path and reference key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupedParam {
    /// burn module path (`blocks.0.norm1.gamma`).
    pub path: String,
    /// Reference checkpoint key (`blocks.0.norm1.weight`).
    pub key: String,
}

/// The two AdamW parameter groups of a model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WeightDecayGroups {
    /// Parameters decayed with the configured weight decay.
    pub decay: Vec<GroupedParam>,
    /// Parameters without weight decay.
    pub no_decay: Vec<GroupedParam>,
}

/// Splits the float parameters of `module` into the reference's two groups (module order).
///
/// Works on any module whose paths map to reference keys through the generator's
/// [`reference_keys`]; lazy parameters are not initialised.
pub fn weight_decay_groups<M: Module>(module: &M) -> WeightDecayGroups {
    let mut groups = WeightDecayGroups::default();
    for (key, p) in reference_keys(module) {
        let entry = GroupedParam {
            path: p.path,
            key: key.clone(),
        };
        if is_decayed(&key, p.shape.len()) {
            groups.decay.push(entry);
        } else {
            groups.no_decay.push(entry);
        }
    }
    groups
}

/// AdamW hyper-parameters (the reference's `optimizer.params` in `rar.yaml`).
#[derive(Config, Debug, PartialEq)]
pub struct OptimizerConfig {
    /// First-moment decay β₁.
    #[config(default = 0.9)]
    pub beta_1: f32,
    /// Second-moment decay β₂.
    #[config(default = 0.96)]
    pub beta_2: f32,
    /// Denominator epsilon (PyTorch's default).
    #[config(default = 1e-8)]
    pub epsilon: f32,
    /// Decoupled weight decay of the decayed group (multiplied by the current learning rate).
    #[config(default = 0.03)]
    pub weight_decay: f32,
}

impl OptimizerConfig {
    /// Checks that the values are usable: betas in `[0, 1)`, epsilon and decay finite and
    /// non-negative.
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |m: String| Err(crate::error::TrainError::InvalidSetting(m));
        for (name, b) in [("beta_1", self.beta_1), ("beta_2", self.beta_2)] {
            if !(0.0..1.0).contains(&b) {
                return bad(format!("AdamW {name} must be in [0, 1), got {b}"));
            }
        }
        for (name, v) in [
            ("epsilon", self.epsilon),
            ("weight_decay", self.weight_decay),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!("AdamW {name} must be finite and >= 0, got {v}"));
            }
        }
        Ok(())
    }

    /// The module optimizer for `module` with the reference's two groups: everything is
    /// decayed by default, and the no-decay parameters (matched by module path) get a second
    /// AdamW without decay.
    pub fn init<M: Module>(&self, module: &M) -> crate::Result<ModuleOptimizer> {
        self.validate()?;
        let adamw =
            |weight_decay| FusedAdamW::new(self.beta_1, self.beta_2, self.epsilon, weight_decay);
        let groups = weight_decay_groups(module);
        let mut optim = ModuleOptimizer::from(adamw(self.weight_decay));
        if !groups.no_decay.is_empty() {
            let paths: Vec<String> = groups.no_decay.into_iter().map(|p| p.path).collect();
            optim = optim.with_group(ParamGroup::from_paths(paths), adamw(0.0), None);
        }
        Ok(optim)
    }
}

struct SquaredNorm<'a> {
    grads: &'a GradientsParams,
    acc: Option<Tensor<1>>,
}

impl ModuleVisitor for SquaredNorm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            let s = g.square().sum();
            self.acc = Some(match self.acc.take() {
                Some(a) => a + s,
                None => s,
            });
        }
    }
}

/// [`SquaredNorm`] of f32 gradients on flex on the host: each gradient's buffer is moved out
/// of `grads`, read once by [`sum_of_squares`] (split over rayon's threads) and put back, no
/// copy and no tensor operation.
struct HostSquaredNorm<'a> {
    grads: &'a mut GradientsParams,
    sum: Option<f64>,
}

impl ModuleVisitor for HostSquaredNorm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            let device = g.device();
            let s = if g.dtype() == DType::F32 {
                let data = g.into_data();
                let s = sum_of_squares(data.as_slice::<f32>().expect("f32 gradient data"));
                self.grads
                    .register::<D>(param.id, Tensor::from_data(data, &device));
                s
            } else {
                let s = g.clone().square().sum().into_scalar::<f32>() as f64;
                self.grads.register::<D>(param.id, g);
                s
            };
            self.sum = Some(self.sum.unwrap_or(0.0) + s);
        }
    }
}

/// The global L2 norm of all gradients of `module`'s parameters (what
/// `torch.nn.utils.clip_grad_norm_` returns), or `None` when no parameter has a gradient.
/// On flex it is summed on the host in f64; elsewhere by tensor operations on the device
/// and read once.
pub(crate) fn global_grad_norm<M: Module>(
    module: &M,
    grads: &mut GradientsParams,
    device: &Device,
) -> Option<f64> {
    if *device == Device::flex() {
        let mut v = HostSquaredNorm { grads, sum: None };
        module.visit(&mut v);
        return v.sum.map(f64::sqrt);
    }
    let mut v = SquaredNorm { grads, acc: None };
    module.visit(&mut v);
    v.acc
        .map(|squares| (squares.sqrt().into_scalar::<f32>()) as f64)
}

/// PyTorch's clipping coefficient `min(1, max_norm / (norm + 1e-6))`: the factor that brings
/// the global gradient norm `norm` down to at most `max_norm`.
pub(crate) fn clip_coefficient(norm: f64, max_norm: f64) -> f32 {
    (max_norm / (norm + 1e-6)).min(1.0) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decay_rule_keeps_the_reference_quirks() {
        assert!(is_decayed("cls_token", 3));
        assert!(is_decayed("blocks.3.adaLN_modulation.1.weight", 2));
        assert!(!is_decayed(
            "adaln_before_head.adaLN_modulation.1.weight",
            2
        ));
        assert!(!is_decayed("pos_embed", 3));
        assert!(!is_decayed("embeddings.weight", 2));
        assert!(!is_decayed("blocks.0.attn.qkv.bias", 1));
        assert!(!is_decayed("some.weight", 1));
        assert!(is_decayed("lm_head.weight", 2));
    }

    #[test]
    fn bad_settings_are_rejected() {
        assert!(OptimizerConfig::new().with_beta_2(1.0).validate().is_err());
        assert!(
            OptimizerConfig::new()
                .with_epsilon(-1.0)
                .validate()
                .is_err()
        );
        assert!(OptimizerConfig::new().validate().is_ok());
    }
}
