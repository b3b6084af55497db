//! The sampler's own decode loop against the reference's recorded `generate()`: the fixture's
//! tokens are forced in place of the draws and the guided logits of every step must match
//! (`rar_*/sampling.safetensors` with guidance, `rar_*/sampling_nocfg.safetensors` without),
//! with and without the KV cache, on every CPU backend. Settings come from `manifest.json`.

use burn::tensor::{Device, Int, Tensor, TensorData};
use rar_core::GuidanceSchedule;
use rar_core::parity::{Fixture, parity_dir_for_tests, rar_model_dirs, read_json, rel_err};
use rar_model::{Rar, RarConfig};
use rar_sample::{Sampler, SamplingConfig};
use serde_json::Value;
use std::path::Path;

use rar_testkit::{Tolerance, devices};

fn sampling_params(parity: &Path, file: &str) -> Value {
    let manifest = read_json(&parity.join("manifest.json"));
    manifest["fixtures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["file"] == file)
        .unwrap_or_else(|| panic!("manifest.json has no entry for {file}"))["sampling_params"]
        .clone()
}

/// Replays `tokens` and returns the worst per-step relative error against `expected`
/// (`[N, B, V]`).
fn replay_worst(
    model: &Rar,
    classes: &[usize],
    options: &SamplingConfig,
    tokens: &rar_core::parity::Array<i64>,
    expected: &rar_core::parity::Array<f32>,
    scale: f32,
) -> f64 {
    let device = model.device();
    let forced = Tensor::<2, Int>::from_data(
        TensorData::new(tokens.data.clone(), tokens.shape.clone()),
        &device,
    );
    let steps = Sampler::new(model)
        .replay(classes, options, forced)
        .unwrap();
    let [n, b, v] = [expected.shape[0], expected.shape[1], expected.shape[2]];
    assert_eq!(steps.len(), n);
    let mut worst = 0f64;
    for (s, logits) in steps.into_iter().enumerate() {
        assert_eq!(logits.dims(), [b, v]);
        let got: Vec<f32> = logits
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
            .into_iter()
            .map(|x| x / scale)
            .collect();
        let want = &expected.data[s * b * v..(s + 1) * b * v];
        worst = worst.max(rel_err(&got, want));
    }
    worst
}

/// The sampler's per-step softmax input against the reference's. CPU backends and lavapipe
/// measure ≤ 7e-7; the GPU bound leaves room for a real GPU's reduction order.
const TOL: Tolerance = Tolerance::new(1e-4, 5e-4);

#[test]
fn guided_and_unguided_logits_match_the_reference_per_step() {
    let Some(parity) = parity_dir_for_tests() else {
        return;
    };
    for dir in rar_model_dirs(&parity).unwrap() {
        let name = dir.file_name().unwrap().to_str().unwrap().to_string();
        let config = RarConfig::from_reference_json(dir.join("config.json")).unwrap();
        for (backend, device) in devices() {
            let model = Rar::from_pytorch(dir.join("model.bin"), &config, &device).unwrap();
            for use_cache in [true, false] {
                // (fixture, guided?, expected array, divisor turning our guided logits into it)
                for (file, guided, expected) in [
                    ("sampling", true, "guided_logits"),
                    ("sampling_nocfg", false, "softmax_input"),
                ] {
                    let params = sampling_params(&parity, &format!("{name}/{file}.safetensors"));
                    let fx = Fixture::open(dir.join(format!("{file}.safetensors")));
                    let classes: Vec<usize> = fx
                        .i64("cond_labels")
                        .data
                        .iter()
                        .map(|&c| c as usize)
                        .collect();
                    let temperature = params["randomize_temperature"].as_f64().unwrap() as f32;
                    let guidance = if guided {
                        GuidanceSchedule::power_cosine(
                            params["guidance_scale"].as_f64().unwrap() as f32,
                            params["guidance_scale_pow"].as_f64().unwrap() as f32,
                        )
                        .unwrap()
                    } else {
                        // guidance off: the batch is not doubled; softmax input = logits / τ
                        GuidanceSchedule::off()
                    };
                    let options = SamplingConfig {
                        guidance,
                        temperature,
                        use_cache,
                        ..SamplingConfig::default()
                    };
                    let scale = if guided { 1.0 } else { temperature };
                    let worst = replay_worst(
                        &model,
                        &classes,
                        &options,
                        &fx.i64("tokens"),
                        &fx.f32(expected),
                        scale,
                    );
                    eprintln!(
                        "{name}/{file} [{backend}, cache {use_cache}]: worst rel err {worst:.3e}"
                    );
                    assert!(
                        worst <= TOL.on(backend),
                        "{name}/{file} {backend} cache={use_cache}: {worst:e}"
                    );
                }
            }
        }
    }
}

#[test]
fn sampling_is_reproducible_and_valid() {
    let Some(parity) = parity_dir_for_tests() else {
        return;
    };
    let dir = &rar_model_dirs(&parity).unwrap()[0];
    let config = RarConfig::from_reference_json(dir.join("config.json")).unwrap();
    let device = Device::flex();
    let model = Rar::from_pytorch(dir.join("model.bin"), &config, &device).unwrap();
    let mut sampler = Sampler::new(&model);
    let options = SamplingConfig {
        guidance: GuidanceSchedule::power_cosine(4.0, 1.0).unwrap(),
        top_k: Some(5),
        ..SamplingConfig::default()
    };
    let classes = [0, config.num_classes - 1, 3];
    let a = sampler.sample(&classes, &options, Some(11)).unwrap();
    let b = sampler.sample(&classes, &options, Some(11)).unwrap();
    assert_eq!(a.dims(), [3, config.image_seq_len]);
    let (a, b) = (a.into_data(), b.into_data());
    assert_eq!(a, b, "same seed, same backend: same tokens");
    let ids = a.convert::<i64>().try_to_vec::<i64>().unwrap();
    assert!(
        ids.iter()
            .all(|&t| (0..config.codebook_size as i64).contains(&t))
    );

    // a non-raster order samples too (and comes back in raster order, all ids valid)
    let spiral = SamplingConfig {
        order: rar_core::ScanOrder::SpiralIn,
        ..options.clone()
    };
    let s = sampler.sample(&classes, &spiral, Some(1)).unwrap();
    assert_eq!(s.dims(), [3, config.image_seq_len]);
}

#[test]
fn bad_requests_are_clear_errors() {
    let Some(parity) = parity_dir_for_tests() else {
        return;
    };
    let dir = &rar_model_dirs(&parity).unwrap()[0];
    let config = RarConfig::from_reference_json(dir.join("config.json")).unwrap();
    let model = Rar::from_pytorch(dir.join("model.bin"), &config, &Device::flex()).unwrap();
    let mut sampler = Sampler::new(&model);
    let ok = SamplingConfig::default();
    let mut err = |classes: &[usize], o: &SamplingConfig| {
        sampler.sample(classes, o, None).unwrap_err().to_string()
    };
    assert!(err(&[config.num_classes], &ok).contains("class"));
    assert!(err(&[], &ok).contains("no classes"));
    for t in [0.0, -1.0, f32::NAN] {
        let o = SamplingConfig {
            temperature: t,
            ..ok.clone()
        };
        assert!(err(&[0], &o).contains("temperature"));
    }
    let o = SamplingConfig {
        guidance: GuidanceSchedule::Constant { scale: f32::NAN },
        ..ok.clone()
    };
    assert!(err(&[0], &o).contains("guidance"));
    let o = SamplingConfig {
        guidance: GuidanceSchedule::Constant { scale: -2.0 },
        ..ok.clone()
    };
    assert!(err(&[0], &o).contains("guidance"));
    let o = SamplingConfig {
        top_k: Some(0),
        ..ok.clone()
    };
    assert!(err(&[0], &o).contains("top-k"));
    let o = SamplingConfig {
        top_p: Some(1.5),
        ..ok.clone()
    };
    assert!(err(&[0], &o).contains("top-p"));
}
