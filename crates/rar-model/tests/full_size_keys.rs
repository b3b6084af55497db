//! The released checkpoints' keys (`full-size-keys.json`, produced by the reference on PyTorch's
//! meta device) map onto the presets' module trees with the right shapes — checked from the
//! JSON alone and on lazily built full-size models that never allocate their weights.

mod common;

use std::collections::BTreeMap;

use burn::module::Module;
use burn::tensor::Device;
use common::*;
use rar_model::{RarConfig, RarPreset, checkpoint_naming, expected_state_dict, infer_config};
use rar_weights::module_parameters;

#[test]
fn full_size_keys_map_onto_the_preset_module_trees() {
    let Some(parity) = parity_dir() else { return };
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(parity.join("full-size-keys.json")).unwrap())
            .unwrap();
    let models = json["models"].as_object().unwrap();
    let mut seen = Vec::new();
    for (name, entry) in models.iter().filter(|(n, _)| n.starts_with("RAR-")) {
        let preset = RarPreset::from_name(name).unwrap_or_else(|| panic!("unknown preset {name}"));
        seen.push(preset);
        let c = &entry["config"];
        let get = |k: &str| c[k].as_u64().unwrap() as usize;
        let config = RarConfig::new(
            get("hidden_size"),
            get("num_hidden_layers"),
            get("num_attention_heads"),
            get("intermediate_size"),
        )
        .with_image_seq_len(get("image_seq_len"))
        .with_codebook_size(get("codebook_size"))
        .with_num_classes(get("condition_num_classes"));
        assert!(
            config.same_architecture(&preset.config()),
            "{name}: preset config differs"
        );
        let count = entry["num_parameters"].as_u64().unwrap() as usize;
        assert_eq!(config.num_params(), count, "{name}: parameter count");

        let state = rar_core::parity::state_dict_shapes(&entry["state_dict"]);
        let tensors_per_size = match preset {
            RarPreset::B | RarPreset::L => 441,
            RarPreset::XL => 585,
            RarPreset::XXL => 729,
        };
        assert_eq!(state.len(), tensors_per_size, "{name}: tensor count");

        // The layout computed from the config is exactly the reference state_dict.
        let expected: BTreeMap<String, Vec<usize>> = expected_state_dict(&config)
            .into_iter()
            .map(|t| (t.key, t.shape))
            .collect();
        assert_eq!(
            expected, state,
            "{name}: expected_state_dict differs from the reference"
        );

        // Preset inference from the shapes alone.
        let inferred = infer_config(&state).unwrap();
        assert_eq!(
            RarPreset::matching(&inferred),
            Some(preset),
            "{name}: inferred preset"
        );

        // The module tree of a lazily built full-size model (no weight is allocated): every
        // parameter maps to exactly one key, with the stored shape (Linear weights
        // transposed), and the key maps back to the parameter.
        let model = config.init(&Device::flex());
        let naming = checkpoint_naming();
        let params = module_parameters(&model);
        assert_eq!(
            params.len(),
            state.len(),
            "{name}: module has a different number of tensors"
        );
        let mut hit = std::collections::HashSet::new();
        for p in &params {
            let key = naming.to_file(p);
            let shape = state
                .get(&key)
                .unwrap_or_else(|| panic!("{name}: '{}' → '{key}' is not a reference key", p.path));
            let is_linear_weight = p.module_type == "Struct:Linear" && p.path.ends_with(".weight");
            assert_eq!(
                p.is_transposed(),
                is_linear_weight,
                "{name}: '{key}' transpose flag"
            );
            assert_eq!(&p.reference_shape(), shape, "{name}: '{key}' shape");
            let back = naming.to_module(&key);
            let norm_path = back.replace(".weight", ".gamma").replace(".bias", ".beta");
            assert!(
                back == p.path || (p.is_norm_affine() && norm_path == p.path),
                "{name}: '{key}' maps back to '{back}', not '{}'",
                p.path
            );
            assert!(
                hit.insert(key.clone()),
                "{name}: two parameters map to '{key}'"
            );
        }
        assert_eq!(model.num_params(), count, "{name}: module parameter count");
        assert!(
            !model.pos_embed.is_initialized() && !model.blocks[0].attn.qkv.weight.is_initialized(),
            "{name}: inspecting the module tree must not allocate weights"
        );
        eprintln!(
            "{name}: {} keys map onto the module tree ({count} parameters)",
            state.len()
        );
    }
    seen.sort_by_key(|p| p.config().num_params());
    assert_eq!(
        seen,
        RarPreset::ALL,
        "full-size-keys.json must cover all four presets"
    );
}

#[test]
fn preset_parameter_counts_are_exact() {
    // Issue #3 / the official `README_RAR.md`.
    assert_eq!(RarPreset::B.config().num_params(), 260_923_648);
    assert_eq!(RarPreset::L.config().num_params(), 461_668_352);
    assert_eq!(RarPreset::XL.config().num_params(), 955_425_024);
    assert_eq!(RarPreset::XXL.config().num_params(), 1_498_520_704);
}
