//! The example binaries as a careless user meets them: bad flags and unusable outputs are
//! refused at once with a message naming them (before any training or sampling), and every
//! program's `--help` describes that program. The binaries are the ones `cargo test` builds
//! beside this test.

use std::path::PathBuf;
use std::process::{Command, Output};

/// The example binary `name` of this build.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    dir.join("examples").join(name)
}

fn run(name: &str, args: &[&str]) -> Output {
    let bin = example(name);
    assert!(bin.is_file(), "{} was not built", bin.display());
    Command::new(&bin).args(args).output().unwrap()
}

fn failure(name: &str, args: &[&str]) -> String {
    let out = run(name, args);
    assert!(!out.status.success(), "{name} {args:?} succeeded");
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !text.contains("panicked"),
        "{name} {args:?} panicked: {text}"
    );
    text
}

#[test]
fn bad_settings_are_refused_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_string_lossy().into_owned();
    let err = failure("quickstart", &["--steps", "0"]);
    assert!(err.contains("steps must be at least 1"), "{err}");
    let err = failure("quickstart", &["--temperature", "0"]);
    assert!(err.contains("temperature"), "{err}");
    // An output that is a directory: refused before training, naming it.
    let err = failure("quickstart", &["--out", &dir]);
    assert!(err.contains(&dir) && err.contains("directory"), "{err}");
    let err = failure(
        "sample_imagenet",
        &[
            "--checkpoint",
            "x.bin",
            "--tokenizer",
            "t.bin",
            "--grid",
            "g.png",
            "--cols",
            "0",
        ],
    );
    assert!(err.contains("--cols"), "{err}");
    let err = failure(
        "sample_imagenet",
        &[
            "--checkpoint",
            "x.bin",
            "--tokenizer",
            "t.bin",
            "--npz",
            &dir,
        ],
    );
    assert!(err.contains("is a directory"), "{err}");
    // A directory given as the checkpoint is a directory, not "no such file".
    let err = failure(
        "sample_imagenet",
        &[
            "--checkpoint",
            &dir,
            "--tokenizer",
            "t.bin",
            "--grid",
            &format!("{dir}/g.png"),
        ],
    );
    assert!(err.contains("is a directory"), "{err}");
}

#[test]
fn every_program_describes_itself() {
    for (name, words) in [
        ("sample_bench", "sampling throughput"),
        ("train_bench", "training-step throughput"),
        ("quickstart", "toy dataset"),
        ("train_imagenet", "ImageNet"),
    ] {
        let out = run(name, &["--help"]);
        let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
        assert!(
            text.lines()
                .next()
                .unwrap_or("")
                .contains(&words.to_lowercase()),
            "{name}: {text}"
        );
    }
}
