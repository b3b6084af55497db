//! The reference's `state_dict` layout and how its keys map onto the module tree.
//!
//! | reference key | module path |
//! |---|---|
//! | `…adaLN_modulation.1.{weight,bias}` | `…ada_ln_modulation.{weight,bias}` (the reference's `Sequential(SiLU, Linear)`; the SiLU is applied in code) |
//! | `…{norm1,norm2,q_norm,k_norm}.weight` / `.bias` | `….gamma` / `.beta` (burn's LayerNorm; follows from the module type) |
//!
//! Linear weights are stored `[out, in]` by PyTorch and `[in, out]` by burn, which burn-store's
//! adapters handle from the module type. Raw parameters (`cls_token`, the positional tables)
//! and `embeddings.weight` keep their layout.

use burn::module::Module;
use rar_weights::{ExpectedTensor, ModuleParam, Naming, module_parameters};

use crate::config::RarConfig;

/// The key mapping of the generator's checkpoints: `adaLN_modulation.1` ⇄
/// `ada_ln_modulation`, indices kept as stored.
pub fn checkpoint_naming() -> Naming {
    Naming::new()
        .rename("adaLN_modulation.1", "ada_ln_modulation")
        .keep_indices()
}

/// Every float parameter of `module` (a [`Rar`](crate::Rar) or one of its parts) with its
/// reference key, in module order, without initialising any lazy parameter.
pub fn reference_keys<M: Module>(module: &M) -> Vec<(String, ModuleParam)> {
    let naming = checkpoint_naming();
    module_parameters(module)
        .into_iter()
        .map(|p| (naming.to_file(&p), p))
        .collect()
}

/// The reference `state_dict` for `config`: keys and shapes (PyTorch layout, Linear weights
/// `[out, in]`) in the reference's order, computed from the configuration alone (nothing is
/// allocated; the official code's `modeling/rar.py` defines the same tensors).
pub fn expected_state_dict(config: &RarConfig) -> Vec<ExpectedTensor> {
    let c = config.hidden_size;
    let i = config.intermediate_size;
    let d = config.head_dim();
    let rows = config.pos_embed_rows();
    let mut out = vec![
        ExpectedTensor::new("cls_token", [1, 1, c]),
        ExpectedTensor::new("pos_embed", [1, rows, c]),
        ExpectedTensor::new("target_aware_pos_embed", [1, rows, c]),
        ExpectedTensor::new("timesteps_embeddings", [1, config.timestep_rows(), c]),
    ];
    for b in 0..config.num_layers {
        let t =
            |name: &str, shape: &[usize]| ExpectedTensor::new(format!("blocks.{b}.{name}"), shape);
        out.extend([
            t("norm1.weight", &[c]),
            t("norm1.bias", &[c]),
            t("attn.qkv.weight", &[3 * c, c]),
            t("attn.qkv.bias", &[3 * c]),
            t("attn.q_norm.weight", &[d]),
            t("attn.q_norm.bias", &[d]),
            t("attn.k_norm.weight", &[d]),
            t("attn.k_norm.bias", &[d]),
            t("attn.proj.weight", &[c, c]),
            t("attn.proj.bias", &[c]),
            t("norm2.weight", &[c]),
            t("norm2.bias", &[c]),
            t("mlp.fc1.weight", &[i, c]),
            t("mlp.fc1.bias", &[i]),
            t("mlp.fc2.weight", &[c, i]),
            t("mlp.fc2.bias", &[c]),
            t("adaLN_modulation.1.weight", &[6 * c, c]),
            t("adaLN_modulation.1.bias", &[6 * c]),
        ]);
    }
    out.extend([
        ExpectedTensor::new("embeddings.weight", [config.vocab_size(), c]),
        ExpectedTensor::new("adaln_before_head.adaLN_modulation.1.weight", [2 * c, c]),
        ExpectedTensor::new("adaln_before_head.adaLN_modulation.1.bias", [2 * c]),
        ExpectedTensor::new("lm_head.weight", [config.codebook_size, c]),
        ExpectedTensor::new("lm_head.bias", [config.codebook_size]),
    ]);
    out
}
