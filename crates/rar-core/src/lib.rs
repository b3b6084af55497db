//! # rar-core — the burn-free heart of RAR
//!
//! Everything about RAR's *orders* and *schedules* that needs no tensors lives here, so it can
//! be tested in seconds and shared by the trainer, the sampler and the data loaders:
//!
//! * [`anneal`] — the randomness-annealing schedule `r(step)` (paper §3.2, Eq. 5);
//! * [`order`] — per-sample order sampling: a uniformly random permutation with probability
//!   `r`, the base scan order otherwise; seeded and reproducible on any machine and thread;
//! * [`scan`] — the six scan orders of the paper's Table 3 / Fig. 6 for any square grid;
//! * [`target`] — the target-aware index logic: which table rows each sequence slot reads;
//! * [`token_space`] — RAR's embedding-id space (image codes, mask id, classes, "none");
//! * [`guidance`] — classifier-free-guidance schedules (power-cosine, linear, constant);
//! * [`lr`] — the linear-warm-up + cosine learning-rate schedule (the official `utils/lr_schedulers.py`);
//! * [`rng`] — the small, versioned random generator behind the reproducible orders.
//!
//! The types a user needs are re-exported at the root: [`RandomnessSchedule`],
//! [`OrderSampler`] / [`SampledOrder`], [`ScanOrder`], [`SequenceLayout`], [`TokenSpace`],
//! [`GuidanceSchedule`], [`WarmupCosineLr`], [`CoreError`]. The `parity` module (feature
//! `fixtures`) reads the reference fixtures for the other crates' tests.
//!
//! ```
//! use rar_core::{GuidanceSchedule, OrderSampler, RandomnessSchedule};
//!
//! // The official schedule: r = 1 until step 125 000, 0 from step 187 500.
//! let r = RandomnessSchedule::new(125_000, 187_500).unwrap();
//! assert_eq!((r.ratio(0), r.ratio(156_250), r.ratio(200_000)), (1.0, 0.5, 0.0));
//!
//! // One order per sample, a function of (seed, step, sample key).
//! let orders = OrderSampler::raster(42, 256).unwrap();
//! let a = orders.sample(7, 3, r.ratio(7));
//! assert!(a.is_random && a.order.len() == 256);
//! assert_eq!(a, orders.sample(7, 3, 1.0));
//!
//! // RAR-B's guidance ramps from 1 up to 16 over the 256 steps.
//! let g = GuidanceSchedule::power_cosine(16.0, 2.75).unwrap();
//! assert_eq!(g.scale_at(0, 256), 1.0);
//! assert!((g.scale_at(255, 256) - 15.996).abs() < 1e-3);
//! ```
#![warn(missing_docs)]

pub mod anneal;
pub mod guidance;
pub mod lr;
pub mod order;
pub mod parity;
pub mod rng;
pub mod scan;
pub mod target;
pub mod token_space;

pub use anneal::RandomnessSchedule;
pub use guidance::GuidanceSchedule;
pub use lr::WarmupCosineLr;
pub use order::{OrderSampler, SampledOrder};
pub use scan::ScanOrder;
pub use target::SequenceLayout;
pub use token_space::TokenSpace;

/// Errors raised by rar-core when a schedule, order or grid is given values it cannot use.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CoreError {
    /// A schedule parameter is out of its valid range (the message names it and its value).
    #[error("invalid schedule parameter: {0}")]
    InvalidSchedule(String),
    /// An order is not a permutation of `0..n` (the message says why).
    #[error("not a permutation of 0..{len}: {reason}")]
    NotAPermutation {
        /// Length the order was expected to have.
        len: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A grid side or token count that cannot describe a square token grid.
    #[error("invalid grid: {0}")]
    InvalidGrid(String),
    /// A class or token id outside the token space.
    #[error("id out of range: {0}")]
    IdOutOfRange(String),
}

/// Result alias for rar-core.
pub type Result<T> = std::result::Result<T, CoreError>;
