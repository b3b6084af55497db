//! A training run killed with SIGKILL (a child process) and resumed from its last checkpoint
//! continues the loss curve of an uninterrupted run — with dropout and attention dropout 0.1
//! (the masks are keyed by `(seed, step, micro-batch)`) and gradient accumulation over two
//! micro-batches (the checkpoint step counts optimizer steps).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use burn::tensor::Device;
use rar_train::{StepMetrics, TrainingConfig, list_checkpoints};

/// Set in the child process: its checkpoint directory.
const CHILD_ENV: &str = "RAR_TRAIN_KILL_CHILD_DIR";

fn config(dir: Option<&Path>) -> TrainingConfig {
    let tiny = common::tiny_toy_config(100_000);
    let model = tiny.model.clone().with_dropout(0.1).with_attn_drop(0.1);
    // Far more steps than the child lives: it is always killed mid-run.
    TrainingConfig { model, ..tiny }
        .with_accum_steps(2)
        .with_checkpoint_dir(dir.map(|d| d.to_string_lossy().into_owned()))
        .with_checkpoint_every(2)
        .with_keep_checkpoints(2)
}

#[test]
fn sigkilled_run_resumes_on_the_same_loss_curve() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        // Child: train (and checkpoint) until killed.
        let mut trainer =
            common::toy_trainer(config(Some(Path::new(&dir))), vec![Device::flex()]).unwrap();
        trainer.run(&mut |_: &StepMetrics| {}).unwrap();
        return;
    }
    let dir: PathBuf = std::env::temp_dir().join(format!("rar-train-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sigkilled_run_resumes_on_the_same_loss_curve",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &dir)
        .spawn()
        .expect("spawn the child training run");
    let started = Instant::now();
    loop {
        let done = list_checkpoints(&dir).unwrap_or_default();
        if done.last().is_some_and(|(step, _)| *step >= 6) {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the child run exited early: {status}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no checkpoint after 300 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL the child"); // SIGKILL on Unix
    child.wait().unwrap();

    let mut resumed = common::resume_toy(&dir).unwrap();
    let from = resumed.step();
    assert!(
        from >= 6 && from.is_multiple_of(2),
        "resumed at step {from}"
    );
    let got = common::losses_until(&mut resumed, from + 3);

    let mut full = common::toy_trainer(config(None), vec![Device::flex()]).unwrap();
    let want = common::losses_until(&mut full, from + 3);
    assert_eq!(got.len(), 3);
    for (k, (a, b)) in got.iter().zip(&want[from as usize..]).enumerate() {
        assert!(
            (a - b).abs() <= 1e-5 * b.abs(),
            "step {}: resumed loss {a} vs uninterrupted {b}",
            from + k as u64
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
