//! Two toy runs with the same seed give the same loss curve, and a run stopped after its
//! last checkpoint and resumed continues that curve. Alone in its test binary: burn's
//! device RNG (parameter initialisation) is process-global, so concurrent tests would
//! interleave their draws.

mod common;

use burn::tensor::Device;
use rar_train::TrainingConfig;

fn tiny() -> TrainingConfig {
    common::tiny_toy_config(8)
}

#[test]
fn same_seed_same_loss_curve_different_seed_different_curve() {
    let config = tiny();
    let run = common::toy_losses;
    let a = run(config.clone());
    let b = run(config.clone());
    assert_eq!(a.len(), 8);
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() <= 1e-5 * x.abs(), "{a:?} vs {b:?}");
    }
    let c = run(config.with_seed(7));
    assert!(
        a.iter().zip(&c).any(|(x, y)| (x - y).abs() > 1e-3),
        "{a:?} vs {c:?}"
    );
}

#[test]
fn resumed_run_continues_the_same_loss_curve() {
    let dir = std::env::temp_dir().join(format!("rar-train-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let device = Device::flex();

    // Uninterrupted run, 10 steps (the test binary's other test also uses the device RNG, so
    // this one builds both models back to back).
    let config = tiny()
        .with_steps(10)
        .with_checkpoint_dir(Some(dir.to_string_lossy().into_owned()))
        .with_checkpoint_every(3)
        .with_keep_checkpoints(2);
    let mut full = common::toy_trainer(
        config.clone().with_checkpoint_dir(None),
        vec![device.clone()],
    )
    .unwrap();
    let want = common::losses_until(&mut full, 10);

    // Interrupted run: checkpoints at 3 and 6, stopped at step 7 (step 7's work is lost).
    let mut first = common::toy_trainer(config, vec![device.clone()]).unwrap();
    let got_first = common::losses_until(&mut first, 7);
    drop(first);
    assert_eq!(got_first[..], want[..7]);
    let kept = rar_train::list_checkpoints(&dir).unwrap();
    let steps: Vec<u64> = kept.iter().map(|(s, _)| *s).collect();
    assert_eq!(steps, [3, 6], "checkpoints every 3 steps, the last 2 kept");

    let mut resumed = common::resume_toy(&dir).unwrap();
    assert_eq!(resumed.step(), 6);
    let got = common::losses_until(&mut resumed, 10);
    assert_eq!(got.len(), 4);
    for (k, (a, b)) in got.iter().zip(&want[6..]).enumerate() {
        assert!(
            (a - b).abs() <= 1e-5 * b.abs(),
            "step {}: resumed loss {a} vs uninterrupted {b}",
            6 + k
        );
    }
    assert!(common::resume_toy(&dir.join("missing")).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}
