//! `evaluate` end to end, as a user runs it after `sample_imagenet --npz`: samples from the
//! parity fixture models, a reference batch of other images, a random-weight Inception; then
//! a second run served from the statistics caches.

use std::path::{Path, PathBuf};
use std::process::Command;

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Device, Tensor};
use rar::core::parity::{parity_dir_for_tests, rar_model_dirs};
use rar::eval::{InceptionV3Config, NpyArray, write_npz};
use serde_json::Value;

fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    dir.join("examples").join(name)
}

fn run(name: &str, args: &[&str]) -> String {
    let out = Command::new(example(name)).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name} {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// burn's default convolution init shrinks activations ~6× per layer (gain 1/√3); He scale
/// keeps them O(1) through the 94 layers so the features are not all ~0.
struct HeScale;

impl ModuleMapper for HeScale {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if D == 4 {
            param.map(|t| t.mul_scalar(6f32.sqrt()))
        } else {
            param
        }
    }
}

fn write_reference(path: &Path, count: usize, side: usize) {
    // A deterministic, textured image set (not the samples' distribution).
    let pixels: Vec<u8> = (0..count * side * side * 3)
        .map(|i| ((i * 2_654_435_761usize) >> 7) as u8)
        .collect();
    write_npz(
        path,
        &[("arr_0", NpyArray::U8(&pixels, &[count, side, side, 3]))],
    )
    .unwrap();
}

fn report(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn evaluate_runs_end_to_end_on_sampled_images() {
    let Some(parity) = parity_dir_for_tests() else {
        return;
    };
    let model = rar_model_dirs(&parity).unwrap().remove(0).join("model.bin");
    let tokenizer = parity.join("maskgit_vqgan/model.bin");
    let tmp = tempfile::tempdir().unwrap();
    let at = |name: &str| tmp.path().join(name).to_string_lossy().into_owned();

    run(
        "sample_imagenet",
        &[
            "--checkpoint",
            &model.to_string_lossy(),
            "--tokenizer",
            &tokenizer.to_string_lossy(),
            "--npz",
            &at("samples.npz"),
            "--per-class",
            "1",
            "--batch-size",
            "10",
        ],
    );
    write_reference(&tmp.path().join("reference.npz"), 12, 40);
    let device = Device::flex();
    InceptionV3Config::new()
        .init(&device)
        .map(&mut HeScale)
        .save_safetensors(tmp.path().join("inception.safetensors"))
        .unwrap();

    let args = [
        "--reference",
        &at("reference.npz"),
        "--samples",
        &at("samples.npz"),
        "--inception",
        &at("inception.safetensors"),
        "--batch",
        "4",
    ];
    let printed = run("evaluate", &args);
    for line in ["Inception Score:", "FID:", "sFID:", "Precision:", "Recall:"] {
        assert!(printed.contains(line), "{printed}");
    }
    let first = report(&tmp.path().join("samples.npz.eval.json"));
    assert_eq!(first["samples"], 10);
    assert_eq!(first["reference_images"], 12);
    assert_eq!(first["reference_statistics_stored"], false);
    let is = first["inception_score"].as_f64().unwrap();
    assert!(is >= 1.0 && is.is_finite(), "IS {is}");
    for key in ["fid", "sfid"] {
        let v = first[key].as_f64().unwrap();
        assert!(v > 0.0 && v.is_finite(), "{key} {v}");
    }
    for key in ["precision", "recall"] {
        let v = first[key].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{key} {v}");
    }
    assert!(first["samples_cache"]["Written"].is_string(), "{first}");
    assert!(tmp.path().join("samples.npz.rar-eval.npz").is_file());
    assert!(tmp.path().join("reference.npz.rar-eval.npz").is_file());

    // Again: both sets from the caches, the same numbers.
    run("evaluate", &args);
    let second = report(&tmp.path().join("samples.npz.eval.json"));
    assert!(second["samples_cache"]["Hit"].is_string(), "{second}");
    assert!(second["reference_cache"]["Hit"].is_string(), "{second}");
    for key in ["inception_score", "fid", "sfid", "precision", "recall"] {
        assert_eq!(first[key], second[key], "{key}");
    }
}

#[test]
fn evaluate_refuses_bad_inputs_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_string_lossy().into_owned();
    let missing = format!("{dir}/none.npz");
    let out = Command::new(example("evaluate"))
        .args([
            "--reference",
            &missing,
            "--samples",
            &dir,
            "--inception",
            &dir,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--reference") && err.contains("none.npz"),
        "{err}"
    );

    // A samples file that is not an npz, with a real (random) Inception.
    let bogus = tmp.path().join("bogus.npz");
    std::fs::write(&bogus, b"not a zip").unwrap();
    write_reference(&tmp.path().join("ref.npz"), 6, 8);
    InceptionV3Config::new()
        .init(&Device::flex())
        .save_safetensors(tmp.path().join("inc.safetensors"))
        .unwrap();
    let out = Command::new(example("evaluate"))
        .args([
            "--reference",
            &format!("{dir}/ref.npz"),
            "--samples",
            &bogus.to_string_lossy(),
            "--inception",
            &format!("{dir}/inc.safetensors"),
            "--no-cache",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bogus.npz") && !err.contains("panicked"),
        "{err}"
    );
}
