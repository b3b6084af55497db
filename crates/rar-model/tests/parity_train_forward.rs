//! Training-mode forward against the PyTorch reference (`train_forward.safetensors`): every
//! intermediate, the logits, labels, loss, per-token loss and accuracy, for random and raster
//! rows, on every CPU backend, for every `rar_*` fixture model, loaded from `.bin` and from
//! `.safetensors`.

mod common;

use common::*;
use rar_model::{BatchOrders, Rar, RarInput, checkpoint_shapes, infer_config};

/// Logits and the training forward against the reference, ‖a − b‖/‖b‖. CPU backends measure
/// ≤ 7e-7; lavapipe (wgpu) measured the same. The GPU bound is wider to leave room for a real
/// GPU's reduction order (tiled products, tree reductions), which no machine here has.
const TOL: Tolerance = Tolerance::new(1e-4, 5e-4);

#[test]
fn train_forward_matches_the_reference() {
    for dir in model_dirs() {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let fx = Fixture::open(dir.join("train_forward.safetensors"));
        let config = fixture_config(&dir);
        let (tok_shape, tokens) = fx.i64("input_ids");
        let (_, cond) = fx.i64("cond_ids");
        let (ord_shape, orders) = fx.i64("orders");
        let (b, n) = (tok_shape[0], tok_shape[1]);
        assert_eq!(n, config.image_seq_len);
        let mut worst = Worst::default();
        for (dev_name, device) in devices() {
            for file in ["model.bin", "model.safetensors"] {
                let model = Rar::from_checkpoint(dir.join(file), Some(&config), &device)
                    .unwrap_or_else(|e| panic!("{e}"))
                    .model;
                let input = RarInput {
                    tokens: ints(tokens.clone(), [b, n], &device),
                    condition: ints(cond.clone(), [b], &device),
                    orders: BatchOrders::from_orders(&orders_of(&ord_shape, &orders), &device)
                        .unwrap(),
                };
                let (out, trace) = model.forward_traced(input).unwrap();
                let tag = |what: &str| format!("{name}/{what}");
                let mut check = |what: &str, got: Vec<f32>| {
                    let (_, want) = fx.f32(what);
                    worst.record(tag(what), rel_err(&got, &want), TOL.on(dev_name));
                };
                check("block_input", values(trace.block_input.clone()));
                check("adaln_condition", values(trace.condition.clone()));
                for (i, o) in trace.block_outputs.iter().enumerate() {
                    let key = format!("block{i}_output");
                    if fx.has(&key) {
                        check(&key, values(o.clone()));
                    }
                }
                check("final_layer_output", values(trace.final_hidden.clone()));
                check("logits", values(out.logits.clone()));
                check("per_token_loss", values(out.token_losses()));
                check("loss", values(out.loss()));
                check("correct_tokens", values(out.accuracy()));
                assert_eq!(
                    int_values(out.labels.clone()),
                    fx.i64("labels").1,
                    "{name} labels"
                );

                // Random rows (0, 2) and raster rows (1, 3) separately, so neither hides in the
                // other's error.
                let logits = values(out.logits.clone());
                let (_, want) = fx.f32("logits");
                let per_row = (n + 1) * config.codebook_size;
                for row in 0..b {
                    let r = row * per_row..(row + 1) * per_row;
                    let kind = if orders_of(&ord_shape, &orders)[row] == (0..n).collect::<Vec<_>>()
                    {
                        "raster"
                    } else {
                        "random"
                    };
                    worst.record(
                        tag(&format!("logits ({kind} rows)")),
                        rel_err(&logits[r.clone()], &want[r]),
                        TOL.on(dev_name),
                    );
                }
                eprintln!("{name} {dev_name} {file}: ok");
            }
        }
        worst.print(&format!("{name} train_forward"));
    }
}

#[test]
fn fixture_configs_are_inferred_from_the_checkpoints() {
    for dir in model_dirs() {
        let config = fixture_config(&dir);
        let shapes = checkpoint_shapes(dir.join("model.bin")).unwrap();
        let inferred = infer_config(&shapes).unwrap();
        assert!(
            inferred.same_architecture(&config),
            "{inferred:?} vs {config:?}"
        );
        let loaded =
            Rar::from_checkpoint(dir.join("model.bin"), None, &burn::tensor::Device::flex())
                .unwrap();
        assert!(loaded.config.same_architecture(&config));
        assert_eq!(loaded.preset, None);
    }
}

#[test]
fn fixture_parameter_counts_match_the_manifest() {
    let Some(parity) = parity_dir() else { return };
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(parity.join("manifest.json")).unwrap())
            .unwrap();
    let fixtures = manifest["fixtures"].as_array().unwrap();
    for dir in model_dirs() {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let entry = fixtures
            .iter()
            .find(|f| f["file"] == format!("{name}/model.bin"))
            .unwrap_or_else(|| panic!("manifest has no {name}/model.bin"));
        let expected = entry["num_parameters"].as_u64().unwrap() as usize;
        let config = fixture_config(&dir);
        assert_eq!(config.num_params(), expected, "{name}");
        // burn's lazy count over the module tree agrees without allocating.
        let model = config.init(&burn::tensor::Device::flex());
        use burn::module::Module;
        assert_eq!(model.num_params(), expected, "{name} module tree");
    }
}
