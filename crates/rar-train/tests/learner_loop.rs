//! The burn-train Learner loop: gradient accumulation gives the same updates as one large
//! batch, checkpoints hold the Learner's optimizer and scheduler records, preview grids are
//! written, dropout runs are reproducible, and data-parallel training over several devices
//! (burn-train's multi-device step, here on two flex devices) gives the updates of one device.

mod common;

use burn::optim::lr_scheduler::LrSchedulerRecord;
use burn::tensor::Device;
use rar_train::{ToyTrainer, ToyTrainingConfig, TrainError, list_checkpoints};

fn tiny(steps: u64) -> ToyTrainingConfig {
    common::tiny_toy_config(steps)
}

fn losses(config: ToyTrainingConfig) -> Vec<f64> {
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
        ToyTrainer::new(tiny(1).with_accum_steps(3), &Device::flex()),
        Err(TrainError::InvalidSetting(_))
    ));
}

#[test]
fn dropout_runs_are_reproducible() {
    let config = || {
        let c = tiny(3);
        let model = c.model.clone().with_dropout(0.1).with_attn_drop(0.1);
        ToyTrainingConfig { model, ..c }
    };
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
    let mut trainer = ToyTrainer::new(config, &Device::flex()).unwrap();
    trainer.run(|_| {}).unwrap();
    assert_eq!(trainer.step(), 4);
    let kept = list_checkpoints(&dir.join("ck")).unwrap();
    assert_eq!(kept.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [2, 4]);
    for (step, path) in &kept {
        for file in ["model.bpk", "optimizer.bpk", "scheduler.bpk", "config.json"] {
            assert!(path.join(file).is_file(), "{} lacks {file}", path.display());
        }
        let sched = LrSchedulerRecord::load(path.join("scheduler.bpk")).unwrap();
        assert_eq!(
            rar_train::learner::scheduler_record_step(&sched),
            Some(*step)
        );
    }
    for step in [2, 4] {
        let png = dir.join("preview").join(format!("preview-{step:08}.png"));
        let img = image::open(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
        let cell = (rar_train::toy::TOY_SIDE + 1) * 4;
        assert_eq!(
            img.width() as usize,
            2 * cell + 4,
            "two classes side by side"
        );
    }
    // A resumed trainer is at the checkpoint's step and has nothing left to do.
    let mut resumed = ToyTrainer::resume(&dir.join("ck"), &Device::flex()).unwrap();
    assert_eq!(resumed.step(), 4);
    assert!(resumed.run(|_| {}).unwrap().is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn two_devices_give_the_updates_of_one_device_with_accumulation() {
    // Device d gets the micro-batches ≡ d (mod 2) of every optimizer step, so two devices see
    // exactly what one device sees with twice the accumulation; with dropout on, the masks
    // (keyed by micro-batch) must match too.
    let config = || {
        let c = tiny(3);
        let model = c.model.clone().with_dropout(0.1).with_attn_drop(0.1);
        ToyTrainingConfig { model, ..c }
    };
    let run_on = |config: ToyTrainingConfig, devices: Vec<Device>| -> Vec<f64> {
        ToyTrainer::new_on_devices(config, devices)
            .unwrap()
            .run(|_| {})
            .unwrap()
            .iter()
            .map(|m| m.loss)
            .collect()
    };
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
        ToyTrainer::new_on_devices(tiny(1).with_accum_steps(4), two()),
        Err(TrainError::InvalidSetting(_))
    ));
    let err = ToyTrainer::new_on_devices(tiny(1), Vec::new())
        .err()
        .expect("an empty device list is refused");
    assert!(matches!(err, TrainError::Devices { .. }), "{err}");
}
