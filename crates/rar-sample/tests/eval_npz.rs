//! The evaluation-set writer end to end on the fixture checkpoints (rar_* generator and the
//! small MaskGIT-VQGAN tokenizer): every class the right number of times, a valid `.npz`, and
//! an interrupted run resumed mid-batch giving the same file as an uninterrupted one.

use burn::tensor::Device;
use rar_core::GuidanceSchedule;
use rar_core::parity::{parity_dir_for_tests, rar_model_dirs};
use rar_model::{Rar, RarConfig};
use rar_sample::{EvalSet, NpzWriter, Sampler, SamplingConfig, write_eval_npz};
use rar_vq::Tokenizer;
use std::io::Read;

#[test]
fn eval_set_is_complete_and_resumable() {
    let Some(parity) = parity_dir_for_tests() else {
        return;
    };
    let dir = &rar_model_dirs(&parity).unwrap()[0];
    let device = Device::flex();
    let config = RarConfig::from_reference_json(dir.join("config.json")).unwrap();
    let model = Rar::from_pytorch(dir.join("model.bin"), &config, &device).unwrap();
    let (tokenizer, _) =
        Tokenizer::from_file(parity.join("maskgit_vqgan").join("model.bin"), &device).unwrap();
    let options = SamplingConfig {
        guidance: GuidanceSchedule::power_cosine(3.0, 1.0).unwrap(),
        ..SamplingConfig::default()
    };
    let set = EvalSet {
        per_class: 2,
        num_classes: 3,
        batch_size: 4,
        seed: 5,
    };
    let out = std::env::temp_dir().join(format!("rar-eval-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    let mut sampler = Sampler::new(&model);
    let mut calls = Vec::new();
    let full = write_eval_npz(
        &mut sampler,
        &tokenizer,
        &options,
        &set,
        out.join("full.npz"),
        "test weights",
        |done, total| calls.push((done, total)),
    )
    .unwrap();
    assert_eq!(calls.first(), Some(&(0, 6)));
    assert_eq!(calls.last(), Some(&(6, 6)));
    let bytes = std::fs::read(&full).unwrap();

    // the array: [6, H, W, 3] uint8, via an independent zip reader
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&bytes)).unwrap();
    let mut npy = Vec::new();
    archive
        .by_name("arr_0.npy")
        .unwrap()
        .read_to_end(&mut npy)
        .unwrap();
    let header = String::from_utf8_lossy(&npy[10..128]).to_string();
    let side = (config.image_seq_len as f64).sqrt() as usize * tokenizer.downsample_factor();
    assert!(
        header.contains(&format!("'shape': (6, {side}, {side}, 3)")),
        "{header}"
    );

    // interrupted after 3 images (inside the first batch of 4), then resumed
    let resumed_path = out.join("resumed.npz");
    let data_start = npy.len() - 6 * side * side * 3;
    {
        let manifest = set.manifest(&options, &config, tokenizer.codebook_size(), "test weights");
        let mut partial =
            NpzWriter::create_or_resume(&resumed_path, [6, side, side, 3], &manifest).unwrap();
        for i in 0..3 {
            let at = data_start + i * side * side * 3;
            partial.push(&npy[at..at + side * side * 3]).unwrap();
        }
        partial.flush().unwrap();
    }
    // Resuming with another seed or batch size would mix two runs' images: refused, naming it.
    for other in [
        EvalSet { seed: 6, ..set },
        EvalSet {
            batch_size: 3,
            ..set
        },
    ] {
        let err = write_eval_npz(
            &mut sampler,
            &tokenizer,
            &options,
            &other,
            &resumed_path,
            "test weights",
            |_, _| {},
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("other settings") && err.contains("set."),
            "{err}"
        );
    }
    let resumed = write_eval_npz(
        &mut sampler,
        &tokenizer,
        &options,
        &set,
        &resumed_path,
        "test weights",
        |_, _| {},
    )
    .unwrap();
    assert_eq!(std::fs::read(resumed).unwrap(), bytes);
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn eval_set_layout() {
    let set = EvalSet::IMAGENET_50K;
    assert_eq!(set.len(), 50_000);
    assert_eq!(set.num_batches(), 1000);
    let mut counts = vec![0usize; 1000];
    for i in 0..set.len() {
        counts[set.class_of(i)] += 1;
    }
    assert!(counts.iter().all(|&c| c == 50));
    assert_eq!(set.batch(999), 49_950..50_000);
    let short = EvalSet {
        per_class: 3,
        num_classes: 3,
        batch_size: 4,
        seed: 0,
    };
    assert_eq!(short.num_batches(), 3);
    assert_eq!(short.batch(2), 8..9);
    // A count that overflows is refused, not wrapped.
    let huge = EvalSet {
        per_class: 1_844_674_407_370_955_162,
        ..EvalSet::IMAGENET_50K
    };
    assert!(huge.validate().is_err());
}
