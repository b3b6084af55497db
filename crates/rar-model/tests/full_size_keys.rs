//! The released checkpoints' keys (`full-size-keys.json`, produced by the reference on PyTorch's
//! meta device) map onto the presets' module trees with the right shapes — checked from the
//! JSON alone and on lazily built full-size models that never allocate their weights.

mod common;

use std::collections::{BTreeMap, HashMap};

use burn::module::Module;
use burn::tensor::Device;
use common::*;
use rar_model::checkpoint::{
    checkpoint_key_to_module_path, expected_state_dict, infer_config, module_parameters,
    module_path_to_checkpoint_key,
};
use rar_model::{RarConfig, RarPreset};

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

        let state: BTreeMap<String, Vec<usize>> = entry["state_dict"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                let shape = v["shape"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d.as_u64().unwrap() as usize)
                    .collect();
                (k.clone(), shape)
            })
            .collect();
        let tensors_per_size = match preset {
            RarPreset::B | RarPreset::L => 441,
            RarPreset::XL => 585,
            RarPreset::XXL => 729,
        };
        assert_eq!(state.len(), tensors_per_size, "{name}: tensor count");

        // The layout computed from the config is exactly the reference state_dict.
        let expected: BTreeMap<String, Vec<usize>> =
            expected_state_dict(&config).into_iter().collect();
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

        // The module tree of a lazily built full-size model (no weight is allocated).
        let model = config.init(&Device::flex());
        let params: HashMap<String, (Vec<usize>, String)> = module_parameters(&model)
            .into_iter()
            .map(|p| (p.path, (p.shape, p.module_type)))
            .collect();
        assert_eq!(
            params.len(),
            state.len(),
            "{name}: module has a different number of tensors"
        );
        let mut hit = std::collections::HashSet::new();
        for (key, shape) in &state {
            let mapping = checkpoint_key_to_module_path(key);
            let (module_shape, module_type) = params.get(&mapping.path).unwrap_or_else(|| {
                panic!(
                    "{name}: '{key}' → '{}' is not a module parameter",
                    mapping.path
                )
            });
            let is_linear_weight =
                module_type == "Struct:Linear" && mapping.path.ends_with(".weight");
            assert_eq!(
                mapping.transposed, is_linear_weight,
                "{name}: '{key}' transpose flag"
            );
            let mut stored = module_shape.clone();
            if mapping.transposed {
                stored.reverse();
            }
            assert_eq!(&stored, shape, "{name}: '{key}' shape");
            assert_eq!(
                module_path_to_checkpoint_key(&mapping.path),
                *key,
                "{name}: inverse mapping"
            );
            assert!(
                hit.insert(mapping.path.clone()),
                "{name}: two keys map to '{}'",
                mapping.path
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
    // Issue #3 / spec §2.1.
    assert_eq!(RarPreset::B.config().num_params(), 260_923_648);
    assert_eq!(RarPreset::L.config().num_params(), 461_668_352);
    assert_eq!(RarPreset::XL.config().num_params(), 955_425_024);
    assert_eq!(RarPreset::XXL.config().num_params(), 1_498_520_704);
    let s = RarPreset::XL.sampling();
    assert_eq!(
        (s.temperature, s.guidance_scale, s.guidance_power),
        (1.02, 6.9, 1.5)
    );
}
