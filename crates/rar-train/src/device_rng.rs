//! Serialising the seeded uses of burn's process-global device RNG.
//!
//! burn draws parameter initialisation and dropout masks from one generator per process. A
//! run is reproducible because every draw happens right after a reseed derived from the run's
//! seed, under this lock, so that concurrent work (other devices' workers, a sampler) cannot
//! interleave its draws.

use std::sync::{Mutex, MutexGuard};

static DEVICE_RNG: Mutex<()> = Mutex::new(());

/// Holds the device RNG for a reseed and the draws that follow it. Poisoning is ignored: a
/// panicking holder cannot leave the generator in a state that matters, since every user
/// reseeds it first.
pub(crate) fn device_rng() -> MutexGuard<'static, ()> {
    DEVICE_RNG.lock().unwrap_or_else(|e| e.into_inner())
}
