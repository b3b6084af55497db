//! Saving and reloading: burn's own burnpack format and a reference-layout SafeTensors export
//! that is byte-for-byte the reference's tensors.

mod common;

use burn::tensor::Device;
use common::*;
use rar_model::{BatchOrders, Rar, RarInput};
use safetensors::SafeTensors;

fn logits(model: &Rar, device: &Device) -> Vec<f32> {
    let n = model.config().image_seq_len;
    let space = model.config().token_space();
    let input = RarInput {
        tokens: ints(
            (0..2 * n as i64)
                .map(|i| (7 * i) % space.codebook_size as i64)
                .collect(),
            [2, n],
            device,
        ),
        condition: ints(
            vec![space.class_id(2).unwrap() as i64, space.none_id() as i64],
            [2],
            device,
        ),
        orders: BatchOrders::raster(2, n, device).unwrap(),
    };
    values(model.forward(input).unwrap().logits)
}

#[test]
fn burnpack_round_trip() {
    let Some(dir) = model_dirs().into_iter().next() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let model = fixture_model(&dir, &device);
    let reference = logits(&model, &device);
    let path = tmp.path().join("rar.bpk");
    model.save_burnpack(&path).unwrap();
    let reloaded = Rar::from_burnpack(&path, model.config(), &device).unwrap();
    assert_eq!(logits(&reloaded, &device), reference);
    // The configuration is inferred from a burnpack file too.
    let loaded = Rar::from_checkpoint(&path, None, &device).unwrap();
    assert!(loaded.config.same_architecture(model.config()));
    assert_eq!(logits(&loaded.model, &device), reference);
    // Saving twice overwrites.
    model.save_burnpack(&path).unwrap();
    assert!(model.save_burnpack(tmp.path().join("rar.bin")).is_err());
}

#[test]
fn safetensors_export_equals_the_reference_file() {
    let Some(dir) = model_dirs().into_iter().next() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let model = fixture_model(&dir, &device);
    let path = tmp.path().join("export.safetensors");
    model.save_safetensors(&path).unwrap();

    let ours = std::fs::read(&path).unwrap();
    let theirs = std::fs::read(dir.join("model.safetensors")).unwrap();
    let ours = SafeTensors::deserialize(&ours).unwrap();
    let theirs = SafeTensors::deserialize(&theirs).unwrap();
    let mut a = ours.names();
    let mut b = theirs.names();
    a.sort();
    b.sort();
    assert_eq!(a, b, "exported keys differ from the reference state_dict");
    for name in b {
        let (x, y) = (ours.tensor(name).unwrap(), theirs.tensor(name).unwrap());
        assert_eq!(x.shape(), y.shape(), "{name}");
        assert_eq!(x.data(), y.data(), "{name}: values differ");
    }
    let reloaded = Rar::from_safetensors(&path, model.config(), &device).unwrap();
    assert_eq!(logits(&reloaded, &device), logits(&model, &device));
}
