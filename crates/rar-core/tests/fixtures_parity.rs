//! rar-core against the reference fixtures: every (step, ratio) and (step, lr) pair in
//! `schedules.json`, every per-step `cfg_scale` in `rar_*/sampling.safetensors`, and the
//! permuted labels / condition ids of `rar_*/train_forward.safetensors`.
//!
//! Configs and sizes come from the fixture files (see `rar_core::parity`).

use rar_core::parity::{Fixture, parity_dir_for_tests, rar_model_dirs, read_json};
use rar_core::target::BatchRows;
use rar_core::{GuidanceSchedule, RandomnessSchedule, SequenceLayout, TokenSpace, WarmupCosineLr};
use serde_json::Value;
use std::path::Path;

fn pairs(v: &Value) -> Vec<(u64, f64)> {
    v.as_array()
        .expect("pairs array")
        .iter()
        .map(|p| (p[0].as_u64().unwrap(), p[1].as_f64().unwrap()))
        .collect()
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
        let want = Fixture::open(model.join("sampling.safetensors"))
            .f32("cfg_scale")
            .data;
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
        let fixture = Fixture::open(model.join("train_forward.safetensors"));
        let orders = fixture.i64("orders");
        let shape = orders.shape;
        let orders = orders.data;
        let tokens = fixture.i64("input_ids").data;
        let labels = fixture.i64("labels").data;
        let classes = fixture.i64("cond_labels").data;
        let cond_ids = fixture.i64("cond_ids").data;
        let dropped = fixture.i64("cond_dropped").data;
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
            let class = (dropped[row] == 0).then_some(classes[row] as usize);
            assert_eq!(space.condition_id(class).unwrap() as i64, cond_ids[row]);
        }
    }
}
