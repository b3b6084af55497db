//! Bad settings and damaged run folders: refused before any training, with messages that say
//! what is wrong and what to do.

mod common;

use burn::tensor::Device;
use rar_train::{StepMetrics, TrainError, Trainer, scan_checkpoints, toy_training_data};

#[test]
fn bad_settings_and_unwritable_outputs_are_refused_before_training() {
    let zero = common::toy_trainer(common::tiny_toy_config(0), vec![Device::flex()]);
    let err = zero.err().expect("0 steps are refused").to_string();
    assert!(err.contains("steps must be at least 1"), "{err}");

    // A checkpoint folder that is a file: refused up front, not at the first checkpoint.
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-folder");
    std::fs::write(&file, b"x").unwrap();
    let config = common::tiny_toy_config(4)
        .with_checkpoint_dir(Some(file.to_string_lossy().into_owned()))
        .with_checkpoint_every(2);
    let err = common::toy_trainer(config, vec![Device::flex()])
        .err()
        .expect("an unwritable checkpoint folder is refused")
        .to_string();
    assert!(
        err.contains("not-a-folder") && err.contains("not a directory"),
        "{err}"
    );
}

#[test]
fn a_damaged_newest_checkpoint_names_the_older_one_to_resume_from() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let config = common::tiny_toy_config(6)
        .with_checkpoint_dir(Some(dir.to_string_lossy().into_owned()))
        .with_checkpoint_every(2)
        .with_keep_checkpoints(3);
    let mut full = common::toy_trainer(
        config.clone().with_checkpoint_dir(None),
        vec![Device::flex()],
    )
    .unwrap();
    let want = common::losses_until(&mut full, 6);
    let mut first = common::toy_trainer(config, vec![Device::flex()]).unwrap();
    common::losses_until(&mut first, 4);
    drop(first);

    // A user folder that looks like a checkpoint is left alone.
    std::fs::create_dir_all(dir.join("checkpoint-notes")).unwrap();
    let scan = scan_checkpoints(&dir).unwrap();
    assert_eq!(
        scan.found.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        [2, 4]
    );
    assert_eq!(scan.ignored.len(), 1, "{:?}", scan.ignored);
    assert!(scan.ignored[0].0.ends_with("checkpoint-notes"));

    // One flipped byte in the newest model file: its checksum catches it.
    let newest = scan.found[1].1.clone();
    let model = newest.join("model.bpk");
    let mut bytes = std::fs::read(&model).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x10;
    std::fs::write(&model, &bytes).unwrap();
    let err = common::resume_toy(&dir)
        .err()
        .expect("the damaged checkpoint is refused");
    let older = scan.found[0].1.clone();
    match &err {
        TrainError::Checkpoint {
            path,
            reason,
            fallback,
        } => {
            assert_eq!(path, &newest);
            assert!(reason.contains("checksum"), "{reason}");
            assert_eq!(fallback.as_ref(), Some(&older));
        }
        other => panic!("wrong error: {other}"),
    }
    assert!(err.to_string().contains("--resume"), "{err}");

    // Resuming from the older one continues the uninterrupted run's loss curve.
    let mut resumed =
        Trainer::resume_from(&older, toy_training_data, vec![Device::flex()]).unwrap();
    assert_eq!(resumed.step(), 2);
    let got: Vec<f64> = resumed
        .run_until(6, &mut |_: &StepMetrics| {})
        .unwrap()
        .iter()
        .map(|m| m.loss)
        .collect();
    for (k, (a, b)) in got.iter().zip(&want[2..]).enumerate() {
        assert!(
            (a - b).abs() <= 1e-5 * b.abs(),
            "step {}: {a} vs {b}",
            2 + k
        );
    }
}
