//! The training loop: gradient accumulation gives the same updates as one large batch,
//! checkpoints hold the model, the optimizer state and the step, preview grids are written,
//! dropout runs are reproducible, and data-parallel training over several devices (here two
//! flex devices) gives the updates of one device.

mod common;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{DType, Device, Tensor};
use rar_model::ComputePrecision;
use rar_train::{StepMetrics, ToyPreview, TrainError, TrainingConfig, list_checkpoints};

fn tiny(steps: u64) -> TrainingConfig {
    common::tiny_toy_config(steps)
}

/// `config` with dropout and attention dropout 0.1.
fn with_dropout(config: TrainingConfig) -> TrainingConfig {
    let model = config.model.clone().with_dropout(0.1).with_attn_drop(0.1);
    TrainingConfig { model, ..config }
}

fn losses(config: TrainingConfig) -> Vec<f64> {
    common::toy_losses(config)
}

#[test]
fn accumulation_matches_one_large_batch() {
    // Same samples, orders and label drops per optimizer step; only the split differs.
    let one = losses(tiny(4));
    let two = losses(tiny(4).with_accum_steps(2));
    let four = losses(tiny(4).with_accum_steps(4));
    assert_eq!(one.len(), 4);
    for (k, ((a, b), c)) in one.iter().zip(&two).zip(&four).enumerate() {
        assert!(
            (a - b).abs() <= 1e-4 * a && (a - c).abs() <= 1e-4 * a,
            "step {k}: accum 1 {a}, accum 2 {b}, accum 4 {c}"
        );
    }
    assert!(matches!(
        common::toy_trainer(tiny(1).with_accum_steps(3), vec![Device::flex()]),
        Err(TrainError::InvalidSetting(_))
    ));
}

#[test]
fn dropout_runs_are_reproducible() {
    let config = || with_dropout(tiny(3));
    let a = losses(config());
    let b = losses(config());
    assert_eq!(
        a, b,
        "dropout masks are a function of (seed, step, micro-batch)"
    );
    let plain = losses(tiny(3));
    assert_ne!(a, plain, "dropout is active");
}

#[test]
fn checkpoints_and_previews_are_written_on_optimizer_steps() {
    let dir = std::env::temp_dir().join(format!("rar-train-loop-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = tiny(4)
        .with_accum_steps(2)
        .with_checkpoint_dir(Some(dir.join("ck").to_string_lossy().into_owned()))
        .with_checkpoint_every(2)
        .with_preview_every(2)
        .with_preview_classes(vec![0, 5])
        .with_preview_dir(Some(dir.join("preview").to_string_lossy().into_owned()));
    let mut trainer = common::toy_trainer(config, vec![Device::flex()])
        .unwrap()
        .with_previews(ToyPreview);
    trainer.run(&mut |_: &StepMetrics| {}).unwrap();
    assert_eq!(trainer.step(), 4);
    let kept = list_checkpoints(&dir.join("ck")).unwrap();
    assert_eq!(kept.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [2, 4]);
    for (step, path) in &kept {
        for file in ["model.bpk", "optimizer.bpk", "config.json", "step.txt"] {
            assert!(path.join(file).is_file(), "{} lacks {file}", path.display());
        }
        let recorded = std::fs::read_to_string(path.join("step.txt")).unwrap();
        assert_eq!(recorded.trim(), step.to_string());
    }
    for step in [2, 4] {
        let png = dir.join("preview").join(format!("preview-{step:08}.png"));
        let img = image::open(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
        let cell = (rar_data::toy::TOY_SIDE + 1) * 4;
        assert_eq!(
            img.width() as usize,
            2 * cell + 4,
            "two classes side by side"
        );
    }
    // A resumed trainer is at the checkpoint's step and has nothing left to do.
    let mut resumed = common::resume_toy(&dir.join("ck")).unwrap();
    assert_eq!(resumed.step(), 4);
    assert!(resumed.run(&mut |_: &StepMetrics| {}).unwrap().is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn two_devices_give_the_updates_of_one_device_with_accumulation() {
    // Device d gets the micro-batches ≡ d (mod 2) of every optimizer step, so two devices see
    // exactly what one device sees with twice the accumulation; with dropout on, the masks
    // (keyed by micro-batch) must match too.
    let config = || with_dropout(tiny(3));
    let run_on = common::toy_losses_on;
    let two = || vec![Device::flex(), Device::flex()];
    for accum in [1, 2] {
        let single = run_on(config().with_accum_steps(2 * accum), vec![Device::flex()]);
        let multi = run_on(config().with_accum_steps(accum), two());
        assert_eq!(single.len(), 3);
        // Same products and the same summation order (outputs are sorted by micro-batch,
        // and a sum of two gradients commutes exactly), so the curves agree to the bit.
        assert_eq!(single, multi, "accum {accum}: one device vs two devices");
    }
    // A batch that does not split over accumulation × devices is refused before training.
    assert!(matches!(
        common::toy_trainer(tiny(1).with_accum_steps(4), two()),
        Err(TrainError::InvalidSetting(_))
    ));
    let err = common::toy_trainer(tiny(1), Vec::new())
        .err()
        .expect("an empty device list is refused");
    assert!(matches!(err, TrainError::Devices { .. }), "{err}");
}

#[test]
fn bf16_mixed_precision_follows_the_fp32_curve_and_saves_fp32_weights() {
    let dir = std::env::temp_dir().join(format!("rar-train-bf16-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let fp32 = losses(tiny(6));
    let config = tiny(6)
        .with_precision(ComputePrecision::Bf16)
        .with_checkpoint_dir(Some(dir.to_string_lossy().into_owned()))
        .with_checkpoint_every(3);
    let mut trainer = common::toy_trainer(config, vec![Device::flex()]).unwrap();
    let bf16 = common::losses(&trainer.run(&mut |_: &StepMetrics| {}).unwrap());
    assert_eq!(bf16.len(), fp32.len());
    let mut differs = false;
    for (k, (a, b)) in bf16.iter().zip(&fp32).enumerate() {
        // bf16 rounds each product to 8 significant bits: the curves agree to about 1 %.
        assert!((a - b).abs() <= 2e-2 * b, "step {k}: bf16 {a}, fp32 {b}");
        differs |= a != b;
    }
    assert!(differs, "the bf16 run computed exactly the fp32 losses");
    // Master weights and the checkpoint stay fp32; a resumed run keeps the precision.
    let mut dtypes = Vec::new();
    trainer.model().visit(&mut FloatDtypes(&mut dtypes));
    assert!(dtypes.iter().all(|d| *d == DType::F32), "{dtypes:?}");
    let resumed = common::resume_toy(&dir).unwrap();
    assert_eq!(resumed.config().precision, ComputePrecision::Bf16);
    let json =
        std::fs::read_to_string(dir.join("checkpoint-00000006").join("config.json")).unwrap();
    assert!(json.contains("\"precision\": \"bf16\""), "{json}");
    std::fs::remove_dir_all(&dir).unwrap();

    #[cfg(feature = "ndarray")]
    {
        #[allow(deprecated)]
        let err = common::toy_trainer(
            tiny(1).with_precision(ComputePrecision::Bf16),
            vec![Device::ndarray()],
        )
        .err()
        .expect("ndarray has no bf16 tensors");
        assert!(matches!(err, TrainError::Devices { .. }), "{err}");
        assert!(err.to_string().contains("BF16"), "{err}");
    }
}

/// Collects the dtype of every float parameter.
struct FloatDtypes<'a>(&'a mut Vec<DType>);

impl ModuleVisitor for FloatDtypes<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.push(param.val().dtype());
    }
}
