//! The `.npz` writer read back by numpy itself — the reader the ADM evaluator uses.
//!
//! Runs `python3` with numpy when available (CI installs numpy); otherwise it says it was
//! skipped. The Rust-side round trip through an independent zip reader lives in
//! the npz writer's unit tests.

use rar_sample::NpzWriter;
use std::process::Command;

fn numpy_available() -> bool {
    Command::new("python3")
        .args(["-c", "import numpy"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn numpy_load_reads_arr_0() {
    if !numpy_available() {
        eprintln!("python3 with numpy not available: skipped");
        return;
    }
    let dir = std::env::temp_dir().join(format!("rar-npz-numpy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("samples.npz");
    let shape = [7, 5, 4, 3];
    let image_bytes = shape[1] * shape[2] * shape[3];
    let mut writer = NpzWriter::create_or_resume(&path, shape, &serde_json::json!({})).unwrap();
    for i in 0..shape[0] {
        let image: Vec<u8> = (0..image_bytes)
            .map(|k| ((i * 37 + k) % 256) as u8)
            .collect();
        writer.push(&image).unwrap();
    }
    let path = writer.finish().unwrap();
    let script = r#"
import sys, numpy as np
a = np.load(sys.argv[1])
assert a.files == ['arr_0'], a.files
x = a['arr_0']
assert x.dtype == np.uint8 and x.shape == (7, 5, 4, 3), (x.dtype, x.shape)
flat = x.reshape(7, -1).astype(np.int64)
want = (np.arange(7)[:, None] * 37 + np.arange(60)[None, :]) % 256
assert (flat == want).all()
print("ok")
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "numpy could not read {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
