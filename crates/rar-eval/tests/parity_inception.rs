//! InceptionV3 against torch-fidelity (fixtures by `scripts/inception_fixtures.py`): the
//! state-dict layout, TF1's bilinear resize, the three feature sets, and loading files with
//! the published keys in both torch formats.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};
use rar_eval::{
    EvalError, InceptionExtractor, InceptionV3, InceptionV3Config, tf1_resize_bilinear,
};
use rar_testkit::{Tolerance, devices};
use serde_json::Value;

mod common;
use common::{fixture_json, fixture_path, floats};

fn fixture() -> Value {
    fixture_json("inception.json")
}

/// Features against torch-fidelity in fp32. Measured: pool ≤ 3.5e-7, spatial ≤ 9.3e-7,
/// logits ≤ 8.2e-7 on flex, ndarray and wgpu (lavapipe).
const FEATURES: Tolerance = Tolerance::new(1e-5, 1e-4);

fn bytes(v: &Value) -> Vec<u8> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u8)
        .collect()
}

fn rel(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den).sqrt()
}

/// `(key, shape, dtype)` of the reference state dict, in its order.
fn reference_keys(f: &Value) -> Vec<(String, Vec<usize>, String)> {
    f["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["key"].as_str().unwrap().to_string(),
                k["shape"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d.as_u64().unwrap() as usize)
                    .collect(),
                k["dtype"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn layout_is_the_reference_state_dict() {
    let f = fixture();
    let want: Vec<(String, Vec<usize>)> = reference_keys(&f)
        .into_iter()
        .filter(|(k, _, _)| !k.ends_with("num_batches_tracked"))
        .map(|(k, s, _)| (k, s))
        .collect();
    let (_, device) = devices().remove(0);
    let got = InceptionV3::state_dict_layout(&InceptionV3Config::new(), &device);
    assert_eq!(got.len(), want.len());
    let got: BTreeMap<_, _> = got.into_iter().collect();
    let want: BTreeMap<_, _> = want.into_iter().collect();
    assert_eq!(got, want);
}

#[test]
fn resize_is_tensorflow1_bilinear() {
    let f = fixture();
    let side = f["resize_side"].as_u64().unwrap() as usize;
    for case in f["resize"].as_array().unwrap() {
        let (h, w) = (
            case["height"].as_u64().unwrap() as usize,
            case["width"].as_u64().unwrap() as usize,
        );
        let got = tf1_resize_bilinear(&bytes(&case["pixels"]), 1, h, w, side).unwrap();
        let want = floats(&case["resized"]);
        let worst = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        // The same f32 operations in the same order: bit-identical.
        assert_eq!(worst, 0.0, "{h}x{w} → {side}: max |Δ| {worst}");
    }
}

/// splitmix64, as in the fixture script.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn fnv1a64(text: &str) -> u64 {
    text.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// The fixture script's weight formula (see its docstring).
fn formula(key: &str, shape: &[usize]) -> Vec<f32> {
    let n: usize = shape.iter().product();
    let seed = fnv1a64(key);
    (0..n as u64)
        .map(|j| {
            let u = (splitmix64(seed.wrapping_add(j)) >> 40) as f32 / (1u32 << 24) as f32;
            let signed = 2.0 * u - 1.0;
            if key.ends_with("conv.weight") {
                let fan_in: usize = shape[1..].iter().product();
                signed * (6.0f64 / fan_in as f64).sqrt() as f32
            } else if key == "fc.weight" {
                signed * (3.0f64 / shape[1] as f64).sqrt() as f32
            } else if key.ends_with("bn.weight") || key.ends_with("running_var") {
                0.5 + u
            } else {
                signed * 0.1
            }
        })
        .collect()
}

/// The formula weights as a `.safetensors` with the reference's keys, `skip` left out and
/// `extra` added.
fn write_formula_weights(
    f: &Value,
    path: &Path,
    skip: Option<&str>,
    extra: Option<(&str, Vec<usize>)>,
) {
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = reference_keys(f)
        .into_iter()
        .filter(|(k, _, dtype)| dtype == "float32" && Some(k.as_str()) != skip)
        .map(|(k, shape, _)| {
            let data = formula(&k, &shape);
            (
                k,
                shape,
                data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )
        })
        .collect();
    if let Some((key, shape)) = extra {
        let n: usize = shape.iter().product();
        tensors.push((key.into(), shape, vec![0u8; 4 * n]));
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(k, shape, data)| {
            (
                k.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                    .unwrap(),
            )
        })
        .collect();
    let bytes = safetensors::serialize(views, None).unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn features_match_torch_fidelity() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inception.safetensors");
    write_formula_weights(&f, &path, None, None);
    let img = &f["images"];
    let (n, h, w) = (
        img["count"].as_u64().unwrap() as usize,
        img["height"].as_u64().unwrap() as usize,
        img["width"].as_u64().unwrap() as usize,
    );
    let pixels = bytes(&img["pixels"]);
    for (name, device) in devices() {
        let model = InceptionV3::from_file(&path, &device).unwrap();
        let extractor = InceptionExtractor::new(model, &device);
        let got = extractor.extract(&pixels, n, h, w).unwrap();
        assert_eq!(got.count, n);
        for (what, ours, theirs) in [
            ("pool_3", &got.pool, floats(&f["pool"])),
            ("mixed_6/conv", &got.spatial, floats(&f["spatial"])),
            ("logits", &got.logits, floats(&f["logits"])),
        ] {
            let e = rel(ours, &theirs);
            println!("{name}: {what} rel {e:.2e}");
            assert!(e <= FEATURES.on(name), "{name}: {what} rel {e:.2e}");
        }
    }
}

#[test]
fn extractor_rejects_a_wrong_pixel_count() {
    let (_, device) = devices().remove(0);
    let extractor = InceptionExtractor::new(InceptionV3Config::new().init(&device), &device);
    let err = extractor.extract(&[0u8; 10], 1, 2, 2).unwrap_err();
    assert!(matches!(err, EvalError::Ragged { len: 10, .. }), "{err}");
    let err = extractor.extract(&[], 0, 2, 2).unwrap_err();
    assert!(matches!(err, EvalError::Invalid { .. }), "{err}");
}

/// Each parameter's values by module path.
#[derive(Default)]
struct Values {
    path: Vec<String>,
    found: BTreeMap<String, Vec<f32>>,
}

impl ModuleVisitor for Values {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let values = param
            .val()
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap();
        self.found.insert(self.path.join("."), values);
    }
}

/// The module path of a reference key.
fn module_path(key: &str) -> String {
    let (first, rest) = key.split_once('.').unwrap();
    let rest = match rest.rsplit_once('.') {
        Some((module, "weight")) if module.ends_with("bn") => format!("{module}.gamma"),
        Some((module, "bias")) if module.ends_with("bn") => format!("{module}.beta"),
        _ => rest.to_string(),
    };
    format!("{}.{rest}", first.to_lowercase())
}

#[test]
fn loads_the_published_key_layout_in_both_torch_formats() {
    let f = fixture();
    let keys = reference_keys(&f);
    let dir = tempfile::tempdir().unwrap();
    let device = Device::flex();
    for format in ["zip", "legacy"] {
        let mut raw = Vec::new();
        let gz = fixture_path(&format!("inception_keys_{format}.pth.gz"));
        flate2::read::GzDecoder::new(std::fs::File::open(&gz).unwrap())
            .read_to_end(&mut raw)
            .unwrap();
        let path = dir.path().join(format!("{format}.pth"));
        std::fs::write(&path, raw).unwrap();
        let model =
            InceptionV3::from_file(&path, &device).unwrap_or_else(|e| panic!("{format}: {e}"));
        let mut values = Values::default();
        model.visit(&mut values);
        let mut checked = 0;
        for (index, (key, _, dtype)) in keys.iter().enumerate() {
            if dtype != "float32" {
                continue;
            }
            let path = module_path(key);
            let got = values
                .found
                .get(&path)
                .unwrap_or_else(|| panic!("{format}: no parameter {path} for {key}"));
            let want = (index + 1) as f32;
            assert!(
                got.iter().all(|v| *v == want),
                "{format}: {key} → {path} holds {} (want {want})",
                got[0]
            );
            checked += 1;
        }
        assert_eq!(
            checked,
            values.found.len(),
            "{format}: every parameter checked"
        );
    }
}

#[test]
fn a_wrong_file_is_an_error_naming_the_key() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let missing = dir.path().join("missing.safetensors");
    write_formula_weights(
        &f,
        &missing,
        Some("Mixed_6d.branch1x1.bn.running_var"),
        None,
    );
    let err = InceptionV3::from_file(&missing, &device).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("Mixed_6d.branch1x1.bn.running_var"), "{text}");
    assert!(text.contains("missing.safetensors"), "{text}");

    let extra = dir.path().join("extra.safetensors");
    write_formula_weights(
        &f,
        &extra,
        None,
        Some(("AuxLogits.fc.weight", vec![1000, 768])),
    );
    let text = InceptionV3::from_file(&extra, &device)
        .unwrap_err()
        .to_string();
    assert!(text.contains("AuxLogits.fc.weight"), "{text}");

    let shape = dir.path().join("shape.safetensors");
    write_formula_weights(
        &f,
        &shape,
        Some("fc.weight"),
        Some(("fc.weight", vec![1000, 2048])),
    );
    let text = InceptionV3::from_file(&shape, &device)
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("fc.weight") && text.contains("1000"),
        "{text}"
    );

    let text = InceptionV3::from_file(dir.path().join("none.pth"), &device)
        .unwrap_err()
        .to_string();
    assert!(text.contains("none.pth"), "{text}");
}
