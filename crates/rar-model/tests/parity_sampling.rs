//! Replays the reference sampler (`sampling.safetensors`, `sampling_nocfg.safetensors`) through
//! the KV-cached decode API: the batch is doubled as in the reference (conditional rows first,
//! then the same number of unconditional rows), the recorded tokens are fed back, and the
//! per-step conditional, unconditional and guided logits (and the softmax input) are compared.
//! The cache-free path ([`Rar::forward_prefix`]) is checked against the reference's
//! `kv_cache=False` logits and against the cached logits at every step.

mod common;

use burn::tensor::Device;
use common::*;
use rar_core::GuidanceSchedule;
use rar_model::{DecodeOrder, Rar};

/// Logits and the training forward against the reference, ‖a − b‖/‖b‖. CPU backends measure
/// ≤ 7e-7; lavapipe (wgpu) measured the same. The GPU bound is wider to leave room for a real
/// GPU's reduction order (tiled products, tree reductions), which no machine here has.
const TOL: Tolerance = Tolerance::new(1e-4, 5e-4);
/// Cached decoding against the cache-free recompute of the same model on the same device
/// (measured ≤ 3.5e-7 on flex, ndarray and lavapipe); on a GPU the one-row step and the full
/// recompute pick different kernels, so the bound is wider there.
const KV_TOL: Tolerance = Tolerance::new(1e-5, 1e-4);

fn sampling_params(name: &str, file: &str) -> serde_json::Value {
    let parity = parity_dir().expect("fixtures present");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(parity.join("manifest.json")).unwrap())
            .unwrap();
    manifest["fixtures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["file"] == format!("{name}/{file}"))
        .map(|f| f["sampling_params"].clone())
        .unwrap_or_else(|| panic!("manifest has no {name}/{file}"))
}

/// `[L, B, V]` step slice `s` → rows.
fn step_rows(v: &[f32], s: usize, b: usize, vocab: usize) -> &[f32] {
    &v[s * b * vocab..(s + 1) * b * vocab]
}

fn run_cfg(
    model: &Rar,
    dir_name: &str,
    fx: &Fixture,
    (dev_name, device): (&str, &Device),
    worst: &mut Worst,
) {
    let params = sampling_params(dir_name, "sampling.safetensors");
    let g = params["guidance_scale"].as_f64().unwrap() as f32;
    let p = params["guidance_scale_pow"].as_f64().unwrap() as f32;
    let temperature = params["randomize_temperature"].as_f64().unwrap() as f32;
    let (_, cond_ids) = fx.i64("cond_ids");
    let none_id = fx.i64("none_id").1[0];
    let (tok_shape, tokens) = fx.i64("tokens");
    let (b, n) = (tok_shape[0], tok_shape[1]);
    let v = model.config().codebook_size;
    let (_, cfg) = fx.f32("cfg_scale");
    let (_, want_c) = fx.f32("cond_logits");
    let (_, want_u) = fx.f32("uncond_logits");
    let (_, want_g) = fx.f32("guided_logits");
    let (_, want_sm) = fx.f32("softmax_input");
    let (_, want_c_nokv) = fx.f32("cond_logits_nokv");
    let (_, want_u_nokv) = fx.f32("uncond_logits_nokv");

    // rar-core's schedule reproduces the reference's per-step scale.
    let schedule = GuidanceSchedule::power_cosine(g, p).unwrap();
    for (s, &want) in cfg.iter().enumerate() {
        assert!((schedule.scale_at(s, n) - want).abs() <= 1e-6 * want.abs().max(1.0));
    }

    // Doubled batch: conditional rows first, then unconditional.
    let mut ids = cond_ids.clone();
    ids.extend(std::iter::repeat_n(none_id, b));
    let cond = ints(ids.clone(), [2 * b], device);
    let plan = model.decode_plan(&DecodeOrder::raster(n).unwrap()).unwrap();
    let mut cache = model.new_cache(2 * b, device);
    let mut generated: Vec<Vec<i64>> = vec![Vec::new(); 2 * b];
    let mut logits = model.prefill(cond.clone(), &plan, &mut cache).unwrap();
    for s in 0..n {
        let got = values(logits.clone());
        let (c, u) = got.split_at(b * v);
        worst.record(
            "cond_logits (kv)",
            rel_err(c, step_rows(&want_c, s, b, v)),
            TOL.on(dev_name),
        );
        worst.record(
            "uncond_logits (kv)",
            rel_err(u, step_rows(&want_u, s, b, v)),
            TOL.on(dev_name),
        );
        let guided: Vec<f32> = c
            .iter()
            .zip(u)
            .map(|(&c, &u)| u + cfg[s] * (c - u))
            .collect();
        worst.record(
            "guided_logits (kv)",
            rel_err(&guided, step_rows(&want_g, s, b, v)),
            TOL.on(dev_name),
        );
        let soft: Vec<f32> = guided.iter().map(|x| x / temperature).collect();
        worst.record(
            "softmax_input (kv)",
            rel_err(&soft, step_rows(&want_sm, s, b, v)),
            TOL.on(dev_name),
        );

        // Cache-free recompute of the same step.
        let prefix: Vec<i64> = generated.iter().flatten().copied().collect();
        let nokv = model
            .forward_prefix(cond.clone(), ints(prefix, [2 * b, s], device), &plan)
            .unwrap();
        let nokv = values(nokv);
        worst.record(
            "cached vs uncached (every step)",
            rel_err(&got, &nokv),
            KV_TOL.on(dev_name),
        );
        let (c, u) = nokv.split_at(b * v);
        worst.record(
            "cond_logits_nokv",
            rel_err(c, step_rows(&want_c_nokv, s, b, v)),
            TOL.on(dev_name),
        );
        worst.record(
            "uncond_logits_nokv",
            rel_err(u, step_rows(&want_u_nokv, s, b, v)),
            TOL.on(dev_name),
        );

        if s + 1 < n {
            // The same recorded token goes to both halves.
            let mut step_tokens: Vec<i64> = (0..b).map(|r| tokens[r * n + s]).collect();
            step_tokens.extend_from_within(..);
            for (row, &t) in step_tokens.iter().enumerate() {
                generated[row].push(t);
            }
            logits = model
                .step(ints(step_tokens, [2 * b], device), &plan, &mut cache)
                .unwrap();
        }
    }
    assert_eq!(cache.tokens_fed(), n - 1);
}

fn run_nocfg(
    model: &Rar,
    dir_name: &str,
    fx: &Fixture,
    (dev_name, device): (&str, &Device),
    worst: &mut Worst,
) {
    let params = sampling_params(dir_name, "sampling_nocfg.safetensors");
    assert_eq!(params["guidance_scale"].as_f64().unwrap(), 0.0);
    let temperature = params["randomize_temperature"].as_f64().unwrap() as f32;
    let space = model.config().token_space();
    let (_, labels) = fx.i64("cond_labels");
    let ids: Vec<i64> = labels
        .iter()
        .map(|&c| space.class_id(c as usize).unwrap() as i64)
        .collect();
    let (tok_shape, tokens) = fx.i64("tokens");
    let (b, n) = (tok_shape[0], tok_shape[1]);
    let v = model.config().codebook_size;
    let (_, want) = fx.f32("logits");
    let (_, want_sm) = fx.f32("softmax_input");
    let plan = model.decode_plan(&DecodeOrder::raster(n).unwrap()).unwrap();
    let mut cache = model.new_cache(b, device);
    let mut logits = model
        .prefill(ints(ids, [b], device), &plan, &mut cache)
        .unwrap();
    for s in 0..n {
        let got = values(logits.clone());
        worst.record(
            "nocfg logits (kv)",
            rel_err(&got, step_rows(&want, s, b, v)),
            TOL.on(dev_name),
        );
        let soft: Vec<f32> = got.iter().map(|x| x / temperature).collect();
        worst.record(
            "nocfg softmax_input",
            rel_err(&soft, step_rows(&want_sm, s, b, v)),
            TOL.on(dev_name),
        );
        if s + 1 < n {
            let step_tokens: Vec<i64> = (0..b).map(|r| tokens[r * n + s]).collect();
            logits = model
                .step(ints(step_tokens, [b], device), &plan, &mut cache)
                .unwrap();
        }
    }
}

#[test]
fn cached_sampling_replays_the_reference() {
    for dir in model_dirs() {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let cfg = Fixture::open(dir.join("sampling.safetensors"));
        let nocfg = Fixture::open(dir.join("sampling_nocfg.safetensors"));
        let mut worst = Worst::default();
        for (dev_name, device) in devices() {
            let model = fixture_model(&dir, &device);
            run_cfg(&model, &name, &cfg, (dev_name, &device), &mut worst);
            run_nocfg(&model, &name, &nocfg, (dev_name, &device), &mut worst);
            eprintln!("{name} {dev_name}: ok");
        }
        worst.print(&format!("{name} sampling"));
    }
}
