//! Weight loading: the official preset's key set (without allocating it) and every kind of
//! bad checkpoint (missing file, unknown format, corrupt or truncated data, missing,
//! unexpected or mis-shaped tensors, wrong dtype), each a clear error, never a panic.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use common::*;
use rar_vq::{Tokenizer, TokenizerConfig, VqError};
use rar_weights::WeightError;

/// Collects parameter paths and lazy shapes without touching (initialising) any parameter.
#[derive(Default)]
struct LazyShapes {
    path: Vec<String>,
    containers: Vec<String>,
    shapes: BTreeMap<String, Vec<usize>>,
    initialized: usize,
}

impl ModuleVisitor for LazyShapes {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.push(name.to_string());
        self.containers.push(container_type.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
        self.containers.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.initialized += usize::from(param.is_initialized());
        let mut key = self.path.join(".");
        // burn's GroupNorm names its affine parameters gamma/beta; PyTorch says weight/bias.
        if self
            .containers
            .last()
            .is_some_and(|c| c == "Struct:GroupNorm")
        {
            key = key.replace(".gamma", ".weight").replace(".beta", ".bias");
        }
        self.shapes.insert(key, param.lazy_shape().to_vec());
    }
}

#[test]
fn official_preset_has_exactly_the_reference_keys_without_allocating() {
    let Some(parity) = rar_core::parity::parity_dir_for_tests() else {
        return;
    };
    let path = parity.join("full-size-keys.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let reference =
        rar_core::parity::state_dict_shapes(&json["models"]["MaskGIT-VQGAN"]["state_dict"]);
    assert_eq!(reference.len(), 168);

    let config = TokenizerConfig::official();
    let from_config: BTreeMap<_, _> = config.state_dict_shapes().into_iter().collect();
    assert_eq!(from_config, reference, "config-derived shapes differ");

    for (_, device) in devices() {
        let model = config.init(&device).unwrap();
        let mut visitor = LazyShapes::default();
        model.visit(&mut visitor);
        assert_eq!(
            visitor.initialized, 0,
            "building the preset allocated parameters"
        );
        assert_eq!(visitor.shapes, reference, "module parameter paths differ");
        let n: usize = visitor
            .shapes
            .values()
            .map(|s| s.iter().product::<usize>())
            .sum();
        assert_eq!(
            n as u64,
            json["models"]["MaskGIT-VQGAN"]["num_parameters"]
                .as_u64()
                .unwrap()
        );
        assert_eq!(model.num_params(), n);
    }
    // The shapes alone also give back the official configuration.
    assert_eq!(
        TokenizerConfig::official().from_shapes(&reference).unwrap(),
        config
    );
}

fn fixture_model() -> Option<PathBuf> {
    vq_fixture_dir()
}

/// Rewrites the fixture safetensors through `edit` (name → (shape, f32 values)).
fn edited_safetensors(
    src: &Path,
    dst: &Path,
    edit: impl FnOnce(&mut BTreeMap<String, (Vec<usize>, Vec<u8>, safetensors::Dtype)>),
) {
    let bytes = std::fs::read(src).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut map: BTreeMap<String, (Vec<usize>, Vec<u8>, safetensors::Dtype)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| {
            (
                n.to_string(),
                (v.shape().to_vec(), v.data().to_vec(), v.dtype()),
            )
        })
        .collect();
    edit(&mut map);
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = map
        .iter()
        .map(|(n, (s, d, t))| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*t, s.clone(), d).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, dst).unwrap();
}

fn load_err(path: &Path, device: &Device) -> VqError {
    match Tokenizer::from_file(path, device) {
        Ok(_) => panic!("{} loaded although it is bad", path.display()),
        Err(e) => {
            println!("{}: {e}", path.file_name().unwrap().to_string_lossy());
            e
        }
    }
}

#[test]
fn bad_checkpoints_are_clear_errors() {
    let Some(dir) = fixture_model() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (_, device) = devices().remove(0);
    let st = dir.join("model.safetensors");
    let bin = dir.join("model.bin");

    // Missing file, unknown extension.
    let e = load_err(&tmp.path().join("nope.bin"), &device);
    assert!(
        matches!(e, VqError::Weights(WeightError::Read { .. })),
        "{e}"
    );
    let odd = tmp.path().join("weights.onnx");
    std::fs::write(&odd, b"x").unwrap();
    assert!(matches!(
        load_err(&odd, &device),
        VqError::Weights(WeightError::UnknownFormat { .. })
    ));

    // Garbage and truncated files of both formats.
    for (name, src) in [("model.bin", &bin), ("model.safetensors", &st)] {
        let bytes = std::fs::read(src).unwrap();
        for (what, data) in [
            ("garbage", b"this is not a checkpoint at all".to_vec()),
            ("empty", Vec::new()),
            ("half", bytes[..bytes.len() / 2].to_vec()),
            ("tail-cut", bytes[..bytes.len() - 100].to_vec()),
        ] {
            let p = tmp.path().join(format!("{what}-{name}"));
            std::fs::write(&p, &data).unwrap();
            let e = load_err(&p, &device);
            assert!(
                matches!(
                    e,
                    VqError::Weights(WeightError::Read { .. } | WeightError::Apply { .. })
                ),
                "{what} {name}: {e:?}"
            );
            assert!(e.to_string().contains(&p.display().to_string()), "{e}");
        }
    }

    // A .bin whose tensor data was damaged in place: the zip CRC catches it.
    let mut bytes = std::fs::read(&bin).unwrap();
    let mid = bytes.len() * 3 / 5;
    for b in &mut bytes[mid..mid + 64] {
        *b ^= 0x5a;
    }
    let p = tmp.path().join("flipped-model.bin");
    std::fs::write(&p, &bytes).unwrap();
    let e = load_err(&p, &device);
    assert!(
        matches!(
            e,
            VqError::Weights(WeightError::Read { .. } | WeightError::Apply { .. })
        ),
        "{e:?}"
    );

    // A checkpoint for another configuration: the error names file, key and both shapes.
    let official = TokenizerConfig::official();
    let e = Tokenizer::from_file_with_config(&st, &official, &device).unwrap_err();
    match &e {
        VqError::Weights(WeightError::Shape {
            path,
            key,
            expected,
            found,
        }) => {
            assert_eq!(path, &st);
            assert_eq!(key, "encoder.conv_in.weight");
            assert_eq!(expected, &vec![128, 3, 3, 3]);
            assert_eq!(
                found[0] * 4,
                128,
                "fixture base width is a quarter: {found:?}"
            );
        }
        other => panic!("expected a shape mismatch, got {other:?}"),
    }
    println!("{e}");

    // Missing, unexpected and mis-shaped tensors; a wrong dtype.
    let p = tmp.path().join("missing.safetensors");
    edited_safetensors(&st, &p, |m| {
        m.remove("decoder.up.2.block.1.norm2.bias");
    });
    match load_err(&p, &device) {
        VqError::Weights(WeightError::Missing { key, expected, .. }) => {
            assert_eq!(key, "decoder.up.2.block.1.norm2.bias");
            assert_eq!(expected.len(), 1);
        }
        other => panic!("{other:?}"),
    }

    let p = tmp.path().join("extra.safetensors");
    edited_safetensors(&st, &p, |m| {
        m.insert(
            "decoder.extra.weight".into(),
            (vec![2], vec![0; 8], safetensors::Dtype::F32),
        );
    });
    match load_err(&p, &device) {
        VqError::Weights(WeightError::Unexpected { key, found, .. }) => {
            assert_eq!(key, "decoder.extra.weight");
            assert_eq!(found, vec![2]);
        }
        other => panic!("{other:?}"),
    }

    let p = tmp.path().join("shape.safetensors");
    edited_safetensors(&st, &p, |m| {
        m.insert(
            "decoder.conv_out.bias".into(),
            (vec![4], vec![0; 16], safetensors::Dtype::F32),
        );
    });
    match load_err(&p, &device) {
        VqError::Weights(WeightError::Shape {
            key,
            expected,
            found,
            ..
        }) => {
            assert_eq!(key, "decoder.conv_out.bias");
            assert_eq!(expected, vec![3]);
            assert_eq!(found, vec![4]);
        }
        other => panic!("{other:?}"),
    }

    let p = tmp.path().join("dtype.safetensors");
    edited_safetensors(&st, &p, |m| {
        let (shape, data, _) = m["decoder.conv_out.bias"].clone();
        let half: Vec<u8> = data[..data.len() / 2].to_vec();
        m.insert(
            "decoder.conv_out.bias".into(),
            (shape, half, safetensors::Dtype::F16),
        );
    });
    match load_err(&p, &device) {
        VqError::Weights(WeightError::DType { key, found, .. }) => {
            assert_eq!(key, "decoder.conv_out.bias");
            assert!(found.contains("F16"), "{found}");
        }
        other => panic!("{other:?}"),
    }

    // A checkpoint that is not a tokenizer at all.
    let p = tmp.path().join("other.safetensors");
    edited_safetensors(&st, &p, |m| m.retain(|k, _| k.starts_with("decoder.")));
    assert!(matches!(
        load_err(&p, &device),
        VqError::Weights(WeightError::Read { .. })
    ));
}

#[test]
fn bin_and_safetensors_load_identical_weights() {
    let Some(dir) = fixture_model() else { return };
    let (_, device) = devices().remove(0);
    let (a, ca) = Tokenizer::from_file(dir.join("model.bin"), &device).unwrap();
    let (b, cb) = Tokenizer::from_file(dir.join("model.safetensors"), &device).unwrap();
    assert_eq!(ca, cb);
    let wa = values(a.decoder.conv_out.weight.val());
    let wb = values(b.decoder.conv_out.weight.val());
    assert_eq!(wa, wb);
    let ga = values(a.encoder.norm_out.gamma.as_ref().unwrap().val());
    let gb = values(b.encoder.norm_out.gamma.as_ref().unwrap().val());
    assert_eq!(ga, gb);
    // GroupNorm weights were really loaded (a fresh GroupNorm has gamma = 1 everywhere).
    assert!(ga.iter().any(|&g| (g - 1.0).abs() > 1e-3));
}
