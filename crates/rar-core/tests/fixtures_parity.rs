//! rar-core against the reference fixtures: every (step, ratio) and (step, lr) pair in
//! `schedules.json`, every per-step `cfg_scale` in `rar_*/sampling.safetensors`, and the
//! permuted labels / condition ids of `rar_*/train_forward.safetensors`.
//!
//! Configs and sizes come from the fixture files (see `rar_core::parity`).

use rar_core::parity::{parity_dir_for_tests, rar_model_dirs};
use rar_core::target::BatchRows;
use rar_core::{GuidanceSchedule, RandomnessSchedule, SequenceLayout, TokenSpace, WarmupCosineLr};
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;
use std::path::Path;

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn pairs(v: &Value) -> Vec<(u64, f64)> {
    v.as_array()
        .expect("pairs array")
        .iter()
        .map(|p| (p[0].as_u64().unwrap(), p[1].as_f64().unwrap()))
        .collect()
}

fn f32s(st: &SafeTensors, name: &str) -> Vec<f32> {
    let t = st
        .tensor(name)
        .unwrap_or_else(|e| panic!("tensor {name}: {e}"));
    assert_eq!(t.dtype(), Dtype::F32, "{name}");
    t.data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn i64s(st: &SafeTensors, name: &str) -> (Vec<i64>, Vec<usize>) {
    let t = st
        .tensor(name)
        .unwrap_or_else(|e| panic!("tensor {name}: {e}"));
    assert_eq!(t.dtype(), Dtype::I64, "{name}");
    let data = t
        .data()
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    (data, t.shape().to_vec())
}

fn bools(st: &SafeTensors, name: &str) -> Vec<bool> {
    let t = st
        .tensor(name)
        .unwrap_or_else(|e| panic!("tensor {name}: {e}"));
    assert_eq!(t.dtype(), Dtype::BOOL, "{name}");
    t.data().iter().map(|&b| b != 0).collect()
}

#[test]
fn randomness_ratio_matches_every_fixture_pair() {
    let Some(dir) = parity_dir_for_tests() else {
        return;
    };
    let s = read_json(&dir.join("schedules.json"));
    let rr = &s["random_ratio"];
    let mut checked = 0;
    for block in [rr, &rr["official_rar_yaml"]] {
        let cfg = &block["config"];
        let sched = RandomnessSchedule::new(
            cfg["randomness_anneal_start"].as_u64().unwrap(),
            cfg["randomness_anneal_end"].as_u64().unwrap(),
        )
        .unwrap();
        for (step, want) in pairs(&block["pairs_step_ratio"]) {
            let got = sched.ratio(step);
            assert!(
                (got - want).abs() <= 1e-15 * want.abs().max(1.0),
                "r({step}) = {got}, reference {want}"
            );
            checked += 1;
        }
    }
    assert!(checked > 0, "schedules.json has no ratio pairs");
}

#[test]
fn learning_rate_matches_every_fixture_pair() {
    let Some(dir) = parity_dir_for_tests() else {
        return;
    };
    let s = read_json(&dir.join("schedules.json"));
    let lr = &s["lr"];
    let mut checked = 0;
    for block in [lr, &lr["official_rar_yaml"]] {
        let cfg = &block["config"];
        let sched = WarmupCosineLr::new(
            cfg["base_lr"].as_f64().unwrap(),
            cfg["end_lr"].as_f64().unwrap(),
            cfg["warmup_steps"].as_u64().unwrap(),
            cfg["max_train_steps"].as_u64().unwrap(),
        )
        .unwrap();
        for (step, want) in pairs(&block["pairs_step_lr"]) {
            let got = sched.lr_at(step);
            assert!(
                (got - want).abs() <= 1e-15 * want.abs().max(1e-30),
                "lr({step}) = {got:e}, reference {want:e}"
            );
            checked += 1;
        }
    }
    assert!(checked > 0, "schedules.json has no lr pairs");
}

/// The manifest entry describing `file` (e.g. `rar_a/sampling.safetensors`).
fn manifest_entry(dir: &Path, file: &str) -> Value {
    let m = read_json(&dir.join("manifest.json"));
    m["fixtures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["file"] == file)
        .cloned()
        .unwrap_or_else(|| panic!("manifest.json has no entry for {file}"))
}

#[test]
fn guidance_schedule_matches_cfg_scale_per_step() {
    let Some(dir) = parity_dir_for_tests() else {
        return;
    };
    let models = rar_model_dirs(&dir).unwrap();
    assert!(
        !models.is_empty(),
        "no rar_* fixture directories in {}",
        dir.display()
    );
    for model in models {
        let name = model.file_name().unwrap().to_str().unwrap();
        let file = format!("{name}/sampling.safetensors");
        let params = &manifest_entry(&dir, &file)["sampling_params"];
        let schedule = GuidanceSchedule::power_cosine(
            params["guidance_scale"].as_f64().unwrap() as f32,
            params["guidance_scale_pow"].as_f64().unwrap() as f32,
        )
        .unwrap();
        let config = read_json(&model.join("config.json"));
        let seq_len = config["model"]["generator"]["image_seq_len"]
            .as_u64()
            .unwrap() as usize;
        let bytes = std::fs::read(model.join("sampling.safetensors")).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let want = f32s(&st, "cfg_scale");
        assert_eq!(want.len(), seq_len, "{file}: one scale per step");
        let got = schedule.scales(seq_len);
        for (s, (g, w)) in got.iter().zip(&want).enumerate() {
            // f32 precision: a few ulp (cos/pow may round differently across libms).
            assert!(
                (g - w).abs() <= 4.0 * f32::EPSILON * w.abs().max(1.0),
                "{file} step {s}: {g} vs {w}"
            );
        }
    }
}

#[test]
fn labels_and_condition_ids_match_the_training_fixture() {
    let Some(dir) = parity_dir_for_tests() else {
        return;
    };
    for model in rar_model_dirs(&dir).unwrap() {
        let config = read_json(&model.join("config.json"));
        let space = TokenSpace::new(
            config["model"]["vq_model"]["codebook_size"]
                .as_u64()
                .unwrap() as usize,
            config["model"]["generator"]["condition_num_classes"]
                .as_u64()
                .unwrap() as usize,
        );
        let bytes = std::fs::read(model.join("train_forward.safetensors")).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let (orders, shape) = i64s(&st, "orders");
        let (tokens, _) = i64s(&st, "input_ids");
        let (labels, _) = i64s(&st, "labels");
        let (classes, _) = i64s(&st, "cond_labels");
        let (cond_ids, _) = i64s(&st, "cond_ids");
        let dropped = bools(&st, "cond_dropped");
        let [b, n] = [shape[0], shape[1]];
        let layouts: Vec<SequenceLayout> = orders
            .chunks(n)
            .map(|o| SequenceLayout::new(o.iter().map(|&p| p as usize).collect()).unwrap())
            .collect();
        let rows = BatchRows::new(&layouts).unwrap();
        for row in 0..b {
            let toks = &tokens[row * n..(row + 1) * n];
            assert_eq!(
                layouts[row].labels(toks).unwrap(),
                labels[row * n..(row + 1) * n]
            );
            let gathered: Vec<i64> = rows.label_gather[row * n..(row + 1) * n]
                .iter()
                .map(|&i| toks[i as usize])
                .collect();
            assert_eq!(gathered, labels[row * n..(row + 1) * n]);
            let class = (!dropped[row]).then_some(classes[row] as usize);
            assert_eq!(space.condition_id(class).unwrap() as i64, cond_ids[row]);
        }
    }
}
