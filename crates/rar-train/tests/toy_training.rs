//! The training loop on the toy dataset, on a tiny model: it learns, it is reproducible, it
//! logs, a non-finite loss stops it, and the trained model samples through the KV cache.

mod common;

use burn::tensor::Device;
use rar_core::{GuidanceSchedule, ScanOrder};
use rar_data::toy::{TOY_CODEBOOK, TOY_TOKENS};
use rar_sample::SamplingConfig;
use rar_train::{StepMetrics, TrainError, TrainingConfig, sample_validity, toy_validation_data};

fn device() -> Device {
    Device::flex()
}

fn tiny(steps: u64) -> TrainingConfig {
    common::tiny_toy_config(steps)
        .with_val_size(8)
        .with_log_every(5)
}

#[test]
fn training_reduces_the_loss_and_logs() {
    let mut logs: Vec<StepMetrics> = Vec::new();
    let config = tiny(20);
    let validation = toy_validation_data(&config);
    let mut trainer = common::toy_trainer(config, vec![device()]).unwrap();
    let (val_before, _) = trainer.validate(&validation).unwrap();
    let history = trainer.run(&mut |m: &StepMetrics| logs.push(*m)).unwrap();
    assert_eq!(trainer.step(), 20);
    assert_eq!(history.len(), 4, "a log line every 5 of 20 steps");
    assert_eq!(history, logs);
    for m in &history {
        assert!(m.loss.is_finite() && m.grad_norm.is_finite() && m.tokens_per_sec > 0.0);
        assert!((0.0..=1.0).contains(&m.accuracy));
        assert!((0.0..=1.0).contains(&m.random_ratio));
    }
    // Annealing over 50%–75% of 20 steps: r = 1 until step 10, 0 from step 15 on.
    assert_eq!(history[0].random_ratio, 1.0);
    assert_eq!(history[3].random_ratio, 0.0);
    let (val_after, acc) = trainer.validate(&validation).unwrap();
    assert!(
        val_after < val_before - 0.1,
        "validation loss {val_before} -> {val_after}"
    );
    assert!((0.0..=1.0).contains(&acc));
    let line = history[3].to_string();
    assert!(line.contains("loss") && line.contains("tok/s"), "{line}");
}

#[test]
fn a_diverging_run_stops_with_a_clear_error() {
    // An absurd learning rate blows the parameters up within a few steps.
    let config = tiny(6).with_base_lr(1e30).with_warmup_steps(0);
    let mut trainer = common::toy_trainer(config, vec![device()]).unwrap();
    let err = trainer.run(&mut |_: &StepMetrics| {}).unwrap_err();
    assert!(
        matches!(
            err,
            TrainError::NonFiniteLoss { .. } | TrainError::NonFiniteGradient { .. }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("non-finite"), "{err}");
}

#[test]
fn bad_settings_are_rejected() {
    let mut wrong_vocab = tiny(1);
    wrong_vocab.model = wrong_vocab.model.with_codebook_size(16);
    assert!(matches!(
        common::toy_trainer(wrong_vocab, vec![device()]),
        Err(TrainError::InvalidSetting(_))
    ));
    assert!(
        common::toy_trainer(
            tiny(1).with_anneal_start(0.9).with_anneal_end(0.5),
            vec![device()]
        )
        .is_err()
    );
    assert!(common::toy_trainer(tiny(1).with_batch_size(0), vec![device()]).is_err());
    assert!(common::toy_trainer(tiny(1).with_max_grad_norm(0.0), vec![device()]).is_err());
}

#[test]
fn trained_model_samples_checked_grids() {
    let mut trainer = common::toy_trainer(tiny(2), vec![device()]).unwrap();
    trainer.run(&mut |_: &StepMetrics| {}).unwrap();
    let model = burn::module::Module::valid(trainer.model());
    let options = SamplingConfig {
        guidance: GuidanceSchedule::constant(2.0).unwrap(),
        temperature: 1.0,
        top_k: None,
        top_p: None,
        order: ScanOrder::RowMajor,
        use_cache: true,
    };
    let classes = [0, 3, 9];
    let (grids, validity) = sample_validity(&model, &classes, &options, 7).unwrap();
    assert_eq!(grids.len(), 3);
    assert!(grids.iter().all(|g| g.len() == TOY_TOKENS));
    assert!(grids.iter().flatten().all(|&t| (t as usize) < TOY_CODEBOOK));
    assert!((0.0..=1.0).contains(&validity));
    let (again, _) = sample_validity(&model, &classes, &options, 7).unwrap();
    assert_eq!(grids, again, "seeded sampling is reproducible");
    assert!(sample_validity(&model, &[], &options, 7).is_err());

    let (w, h, rgb) = rar_data::render_grid(&grids, 16, 2, 3);
    assert_eq!((w, h), (2 * 17 * 3 + 3, 2 * 17 * 3 + 3));
    assert_eq!(rgb.len(), (w * h * 3) as usize);
}
