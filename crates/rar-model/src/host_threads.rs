//! Running a host computation on rayon's worker threads instead of the caller's thread.
//!
//! burn-flex, its matrix products and rar-kernels split their work with rayon. Called from a
//! thread outside rayon's pool (a program's main thread), every parallel operation is
//! injected into the pool and the caller blocks until a worker has finished it: two thread
//! wake-ups (futex calls, a few microseconds each) per operation, thousands of them in one
//! decode batch or training step, and the caller's core idles while it waits. Run from a
//! worker, the same operations are split in place and the caller's own thread takes a share.
//! Measured on a 2-core Xeon (docs/BENCHMARKS.md): guided sampling of the small
//! configuration 0.91 → 0.69 s per batch at 2 threads (1.32 → 1.18 s at 1), a training
//! step 0.52 → 0.45 s (0.78 → 0.74 s).

use burn::tensor::Device;

use crate::precision::{compute_precision, with_compute_precision};

/// Runs `f` on one of rayon's worker threads when tensors on `device` are computed on the host
/// (flex) and the caller is not a worker already; runs it in place otherwise (GPU backends,
/// nested calls). Also worth it with one thread: the operations that still go through rayon
/// then never leave the worker. The calling thread's
/// [`crate::ComputePrecision`] carries over.
pub fn on_compute_threads<R: Send>(device: &Device, f: impl FnOnce() -> R + Send) -> R {
    if computed_on_host(device) {
        on_worker_thread(f)
    } else {
        f()
    }
}

/// [`on_compute_threads`] for host work that does not go through a burn device (the packed
/// decoder's kernels).
pub(crate) fn on_worker_thread<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        return f();
    }
    let precision = compute_precision();
    rayon::scope(move |_| with_compute_precision(precision, f))
}

/// Whether `device` runs its operations on this machine's CPU threads through rayon.
fn computed_on_host(device: &Device) -> bool {
    #[cfg(feature = "flex")]
    if *device == Device::flex() {
        return true;
    }
    let _ = device;
    false
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use crate::ComputePrecision;

    #[test]
    fn runs_on_a_worker_with_the_callers_precision() {
        // A thread outside rayon's pool, like a program's main thread.
        let (outer, inner, precision) = std::thread::spawn(|| {
            with_compute_precision(ComputePrecision::Bf16, || {
                on_compute_threads(&Device::flex(), || {
                    let outer = rayon::current_thread_index();
                    // Nested: already on a worker, so it runs in place, on the same thread.
                    let inner = on_compute_threads(&Device::flex(), rayon::current_thread_index);
                    (outer, inner, compute_precision())
                })
            })
        })
        .join()
        .unwrap();
        assert_eq!(precision, ComputePrecision::Bf16);
        assert_eq!(outer, inner);
        assert!(outer.is_some(), "ran outside rayon's pool");
    }
}
