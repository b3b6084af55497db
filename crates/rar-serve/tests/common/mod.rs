//! Helpers shared by the rar-serve tests.

use std::time::{Duration, Instant};

/// Polls `ok` every 2 ms until it holds; fails the test after a minute, naming `what`.
pub fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}
