//! Bad checkpoints are clear errors naming the file, the key and both shapes — never panics:
//! missing, unexpected, mis-shaped and non-float tensors, a wrong config, truncated, corrupt,
//! empty and absent files, unknown formats, and shapes from which no config can be inferred.
//! The damaged files are made from the fixture model in a temporary directory.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use common::*;
use rar_model::{Rar, RarConfig, RarModelError};
use rar_weights::WeightError;
use safetensors::{Dtype, SafeTensors};

/// Name → (dtype, shape, bytes) of a safetensors file.
type Entries = BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)>;

fn read_entries(path: &Path) -> Entries {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(n, v)| (n, (v.dtype(), v.shape().to_vec(), v.data().to_vec())))
        .collect()
}

fn write_entries(entries: &Entries, path: &Path) {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = entries
        .iter()
        .map(|(n, (dt, shape, data))| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*dt, shape.clone(), data).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

struct Setup {
    _tmp: tempfile::TempDir,
    tmp: PathBuf,
    dir: PathBuf,
    config: RarConfig,
    entries: Entries,
    device: Device,
}

fn setup() -> Option<Setup> {
    let dir = model_dirs().into_iter().next()?;
    let tmp = tempfile::tempdir().unwrap();
    Some(Setup {
        tmp: tmp.path().to_path_buf(),
        _tmp: tmp,
        config: fixture_config(&dir),
        entries: read_entries(&dir.join("model.safetensors")),
        dir,
        device: Device::flex(),
    })
}

fn load(s: &Setup, path: &Path) -> RarModelError {
    Rar::from_checkpoint(path, Some(&s.config), &s.device).expect_err("loading must fail")
}

#[test]
fn the_unmodified_copy_loads() {
    let Some(s) = setup() else { return };
    let path = s.tmp.join("copy.safetensors");
    write_entries(&s.entries, &path);
    Rar::from_safetensors(&path, &s.config, &s.device).unwrap();
}

#[test]
fn missing_tensor_names_file_key_and_shape() {
    let Some(s) = setup() else { return };
    let mut entries = s.entries.clone();
    entries.remove("lm_head.bias").unwrap();
    let path = s.tmp.join("missing.safetensors");
    write_entries(&entries, &path);
    let err = load(&s, &path);
    let msg = err.to_string();
    match err {
        RarModelError::Weights(WeightError::Missing {
            path: p,
            key,
            expected,
        }) => {
            assert_eq!(p, path);
            assert_eq!(key, "lm_head.bias");
            assert_eq!(expected, vec![s.config.codebook_size]);
        }
        other => panic!("wrong error: {other}"),
    }
    assert!(
        msg.contains("missing.safetensors") && msg.contains("lm_head.bias"),
        "{msg}"
    );
}

#[test]
fn unexpected_tensor_is_reported() {
    let Some(s) = setup() else { return };
    let mut entries = s.entries.clone();
    entries.insert("extra.weight".into(), (Dtype::F32, vec![3], vec![0u8; 12]));
    let path = s.tmp.join("extra.safetensors");
    write_entries(&entries, &path);
    match load(&s, &path) {
        RarModelError::Weights(WeightError::Unexpected { key, found, .. }) => {
            assert_eq!(key, "extra.weight");
            assert_eq!(found, vec![3]);
        }
        other => panic!("wrong error: {other}"),
    }
}

#[test]
fn mis_shaped_tensor_reports_both_shapes() {
    let Some(s) = setup() else { return };
    let mut entries = s.entries.clone();
    let key = "blocks.0.attn.qkv.weight";
    let (_, shape, data) = entries.get(key).unwrap().clone();
    let (rows, cols) = (shape[0], shape[1]);
    let cut = (rows - 1) * cols * 4;
    entries.insert(
        key.into(),
        (Dtype::F32, vec![rows - 1, cols], data[..cut].to_vec()),
    );
    let path = s.tmp.join("misshaped.safetensors");
    write_entries(&entries, &path);
    let err = load(&s, &path);
    let msg = err.to_string();
    match err {
        RarModelError::Weights(WeightError::Shape {
            key: k,
            expected,
            found,
            ..
        }) => {
            assert_eq!(k, key);
            assert_eq!(expected, vec![rows, cols]);
            assert_eq!(found, vec![rows - 1, cols]);
        }
        other => panic!("wrong error: {other}"),
    }
    assert!(
        msg.contains(&format!("{:?}", [rows, cols]))
            && msg.contains(&format!("{:?}", [rows - 1, cols])),
        "{msg}"
    );
}

#[test]
fn integer_tensor_is_rejected() {
    let Some(s) = setup() else { return };
    let mut entries = s.entries.clone();
    let (_, shape, data) = entries.get("lm_head.bias").unwrap().clone();
    entries.insert("lm_head.bias".into(), (Dtype::I32, shape, data));
    let path = s.tmp.join("int.safetensors");
    write_entries(&entries, &path);
    assert!(matches!(
        load(&s, &path),
        RarModelError::Weights(WeightError::DType { .. })
    ));
}

#[test]
fn wrong_config_is_a_shape_error_on_the_real_bin() {
    let Some(s) = setup() else { return };
    let path = s.dir.join("model.bin");
    let wrong = s
        .config
        .clone()
        .with_image_seq_len(s.config.image_seq_len + 1);
    let err = Rar::from_pytorch(&path, &wrong, &s.device).unwrap_err();
    let msg = err.to_string();
    match err {
        RarModelError::Weights(WeightError::Shape {
            key,
            expected,
            found,
            ..
        }) => {
            assert_eq!(key, "pos_embed");
            assert_eq!(expected[1], found[1] + 1);
        }
        other => panic!("wrong error: {other}"),
    }
    assert!(msg.contains("model.bin"), "{msg}");
    let wider = RarConfig {
        hidden_size: s.config.hidden_size * 2,
        ..s.config.clone()
    };
    assert!(matches!(
        Rar::from_pytorch(&path, &wider, &s.device).unwrap_err(),
        RarModelError::Weights(WeightError::Shape { .. })
    ));
    let invalid = RarConfig {
        num_heads: s.config.hidden_size + 1,
        ..s.config.clone()
    };
    assert!(matches!(
        Rar::from_pytorch(&path, &invalid, &s.device).unwrap_err(),
        RarModelError::InvalidConfig(_)
    ));
}

fn write_bytes(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn assert_read_error(s: &Setup, path: &Path) {
    match load(s, path) {
        RarModelError::Weights(WeightError::Read { path: p, reason }) => {
            assert_eq!(p, path);
            assert!(!reason.is_empty());
        }
        other => panic!("{}: wrong error: {other}", path.display()),
    }
}

#[test]
fn truncated_files_are_errors() {
    let Some(s) = setup() else { return };
    for src in ["model.bin", "model.safetensors"] {
        let bytes = std::fs::read(s.dir.join(src)).unwrap();
        for frac in [0.5, 0.99] {
            let cut = (bytes.len() as f64 * frac) as usize;
            let path = write_bytes(
                &s.tmp,
                &format!("cut{}_{src}", (frac * 100.0) as u32),
                &bytes[..cut],
            );
            assert_read_error(&s, &path);
        }
        // Just the first bytes (headers only).
        let path = write_bytes(&s.tmp, &format!("head_{src}"), &bytes[..64]);
        assert_read_error(&s, &path);
    }
}

#[test]
fn corrupt_empty_and_absent_files_are_errors() {
    let Some(s) = setup() else { return };
    let mut garbage = Vec::with_capacity(100_000);
    let mut x: u32 = 12345;
    for _ in 0..100_000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        garbage.push((x >> 16) as u8);
    }
    for ext in ["bin", "safetensors", "bpk"] {
        let path = write_bytes(&s.tmp, &format!("garbage.{ext}"), &garbage);
        assert_read_error(&s, &path);
        let path = write_bytes(&s.tmp, &format!("empty.{ext}"), &[]);
        assert_read_error(&s, &path);
        assert_read_error(&s, &s.tmp.join(format!("absent.{ext}")));
    }
    // A safetensors header whose JSON is damaged.
    let mut bytes = std::fs::read(s.dir.join("model.safetensors")).unwrap();
    for b in &mut bytes[8..40] {
        *b = b'#';
    }
    let path = write_bytes(&s.tmp, "badheader.safetensors", &bytes);
    assert_read_error(&s, &path);
    // A PyTorch zip whose central directory is overwritten.
    let mut bytes = std::fs::read(s.dir.join("model.bin")).unwrap();
    let len = bytes.len();
    for b in &mut bytes[len - 200..] {
        *b = 0xAB;
    }
    let path = write_bytes(&s.tmp, "baddir.bin", &bytes);
    assert_read_error(&s, &path);
}

#[test]
fn unknown_format_and_uninferable_config() {
    let Some(s) = setup() else { return };
    let path = write_bytes(&s.tmp, "weights.onnx", b"x");
    assert!(matches!(
        load(&s, &path),
        RarModelError::Weights(WeightError::UnknownFormat { .. })
    ));
    // .safetensors passed to the PyTorch loader.
    let err = Rar::from_pytorch(s.dir.join("model.safetensors"), &s.config, &s.device).unwrap_err();
    assert!(matches!(
        err,
        RarModelError::Weights(WeightError::UnknownFormat { .. })
    ));

    let mut entries = s.entries.clone();
    entries.remove("cls_token");
    let path = s.tmp.join("nocls.safetensors");
    write_entries(&entries, &path);
    let err = Rar::from_checkpoint(&path, None, &s.device).unwrap_err();
    assert!(err.to_string().contains("cls_token"), "{err}");
    assert!(matches!(err, RarModelError::InferConfig { .. }));
}

#[test]
fn non_finite_weights_are_refused_unless_allowed() {
    let Some(s) = setup() else { return };
    for (what, bits) in [("NaN", f32::NAN), ("infinity", f32::NEG_INFINITY)] {
        let mut entries = s.entries.clone();
        let (dtype, shape, mut data) = entries.get("blocks.0.mlp.fc1.weight").unwrap().clone();
        assert_eq!(dtype, Dtype::F32);
        data[40..44].copy_from_slice(&bits.to_le_bytes());
        entries.insert("blocks.0.mlp.fc1.weight".into(), (dtype, shape, data));
        let path = s.tmp.join(format!("{what}.safetensors"));
        write_entries(&entries, &path);
        let err = load(&s, &path);
        match &err {
            RarModelError::Weights(WeightError::NonFinite { key, path: p }) => {
                assert_eq!(key, "blocks.0.mlp.fc1.weight", "{what}");
                assert_eq!(p, &path);
            }
            other => panic!("{what}: wrong error: {other}"),
        }
        let allow = rar_model::LoadConfig {
            allow_non_finite: true,
        };
        Rar::load_checkpoint(&path, Some(&s.config), &s.device, allow)
            .unwrap_or_else(|e| panic!("{what} allowed: {e}"));
    }
}

#[test]
fn errors_blame_the_key_that_is_wrong_when_the_config_is_inferred() {
    let Some(s) = setup() else { return };
    let infer = |entries: &Entries, name: &str| {
        let path = s.tmp.join(name);
        write_entries(entries, &path);
        Rar::from_checkpoint(&path, None, &s.device).expect_err("must fail")
    };
    // A missing tensor of the second block is that tensor missing, not the rest of the
    // block unexpected.
    let mut entries = s.entries.clone();
    entries.remove("blocks.1.norm1.weight").unwrap();
    match infer(&entries, "no-norm1.safetensors") {
        RarModelError::Weights(WeightError::Missing { key, .. }) => {
            assert_eq!(key, "blocks.1.norm1.weight")
        }
        other => panic!("wrong error: {other}"),
    }
    // A mis-shaped head weight is blamed on itself, not on the head bias.
    let mut entries = s.entries.clone();
    let (dtype, shape, data) = entries.get("lm_head.weight").unwrap().clone();
    let cut = (shape[0] - 1) * shape[1] * 4;
    entries.insert(
        "lm_head.weight".into(),
        (dtype, vec![shape[0] - 1, shape[1]], data[..cut].to_vec()),
    );
    match infer(&entries, "head.safetensors") {
        RarModelError::Weights(WeightError::Shape { key, .. }) => assert_eq!(key, "lm_head.weight"),
        other => panic!("wrong error: {other}"),
    }
    // A directory is a directory, not "no such file".
    let dir = s.tmp.join("weights.bin");
    std::fs::create_dir_all(&dir).unwrap();
    let err = load(&s, &dir).to_string();
    assert!(err.contains("is a directory"), "{err}");
}
