//! Keeping freed memory in the process for the next training step (glibc on Linux).
//!
//! A training step on the CPU allocates and frees the same large buffers every step
//! (activations, gradients, products of 2–10 MB each). glibc hands blocks above its mmap
//! threshold straight back to the kernel and trims the top of its heaps, so every step
//! faults those pages in again, zero-filled by the kernel: 7 % of a step of the small config
//! on flex in a profile (issue #12). [`retain_freed_memory`] raises both thresholds so that
//! freed blocks are reused, and keeps every thread on the main heap: the computation runs
//! on a rayon worker, whose glibc arena is a chain of 64 MiB heaps that glibc unmaps as
//! soon as one is empty, whatever the trim threshold — 16 k page faults (≈ 65 MB) per step
//! of the small config with the thresholds alone, none with one arena. The process then
//! keeps its peak heap instead of shrinking between steps. It changes nothing but speed,
//! and it is a process-wide setting, so binaries call it, not libraries.

/// Makes glibc keep freed memory for reuse: blocks up to 1 GiB come from the heap instead of
/// their own mappings, the heap is trimmed only above 2 GiB of free space, and all threads
/// allocate from the main heap (one arena; a training step allocates a few thousand
/// blocks, so the shared lock costs nothing measurable). Call it once,
/// early in `main`, before the threads start. Returns whether the setting was applied (only
/// on Linux with glibc; elsewhere it does nothing).
pub fn retain_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const MMAP_THRESHOLD: libc::c_int = 1 << 30;
        // SAFETY: `mallopt` only changes allocator parameters; both values are in range.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX) == 1
                && libc::mallopt(libc::M_ARENA_MAX, 1) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
