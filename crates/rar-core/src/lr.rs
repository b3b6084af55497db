//! The learning-rate schedule (the official `utils/lr_schedulers.py`): linear warm-up from 0, then cosine to `end_lr`.
//!
//! ```text
//! lr(k) = η · k / W                                          k < W
//! lr(k) = η_end + (η − η_end) · max(0, ½(1 + cos(π·(k − W)/(T − W))))   k ≥ W
//! ```
//!
//! `k` is the 0-based optimizer step, so the very first update uses LR 0. The reference
//! expresses this as a multiplier on `η` (PyTorch `LambdaLR`); [`WarmupCosineLr::lr_at`]
//! repeats its f64 operations (`η · (λ)` with `λ = (η_end + (η − η_end)·c)/η`) and so
//! reproduces its values bit for bit. Past `T` the cosine rises again, as in the reference
//! (training stops at `T`).

use crate::{CoreError, Result};
use serde::{Deserialize, Serialize};

/// Linear warm-up then half-cycle cosine decay.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WarmupCosineLr {
    /// Peak learning rate `η`, reached at the end of warm-up.
    pub base_lr: f64,
    /// Final learning rate `η_end` at `total_steps`.
    pub end_lr: f64,
    /// Warm-up length `W` in optimizer steps.
    pub warmup_steps: u64,
    /// Total optimizer steps `T`.
    pub total_steps: u64,
}

impl WarmupCosineLr {
    /// The official RAR recipe: 4e-4 peak, 1e-5 end, 62 500 warm-up of 250 000 steps.
    pub const OFFICIAL: Self = Self {
        base_lr: 4e-4,
        end_lr: 1e-5,
        warmup_steps: 62_500,
        total_steps: 250_000,
    };

    /// A schedule; learning rates must be finite, `base_lr > 0`, `end_lr ≥ 0`.
    pub fn new(base_lr: f64, end_lr: f64, warmup_steps: u64, total_steps: u64) -> Result<Self> {
        if !base_lr.is_finite() || base_lr <= 0.0 {
            return Err(CoreError::InvalidSchedule(format!(
                "base learning rate must be finite and > 0, got {base_lr}"
            )));
        }
        if !end_lr.is_finite() || end_lr < 0.0 {
            return Err(CoreError::InvalidSchedule(format!(
                "end learning rate must be finite and ≥ 0, got {end_lr}"
            )));
        }
        Ok(Self {
            base_lr,
            end_lr,
            warmup_steps,
            total_steps,
        })
    }

    /// The learning rate used by 0-based optimizer step `step`.
    pub fn lr_at(&self, step: u64) -> f64 {
        self.base_lr * self.multiplier(step)
    }

    /// The `LambdaLR` multiplier `λ(step)` (so that `lr = base_lr · λ`).
    pub fn multiplier(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return step as f64 / self.warmup_steps.max(1) as f64;
        }
        let progress = (step - self.warmup_steps) as f64
            / self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
        // num_cycles = 0.5: cos(π · 0.5 · 2 · progress)
        let ratio = (0.5 * (1.0 + (std::f64::consts::PI * 0.5 * 2.0 * progress).cos())).max(0.0);
        (self.end_lr + (self.base_lr - self.end_lr) * ratio) / self.base_lr
    }
}

impl Default for WarmupCosineLr {
    fn default() -> Self {
        Self::OFFICIAL
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_step_is_zero_and_peak_is_reached() {
        let s = WarmupCosineLr::OFFICIAL;
        assert_eq!(s.lr_at(0), 0.0);
        assert!((s.lr_at(62_500) - 4e-4).abs() < 1e-18);
        assert!((s.lr_at(250_000) - 1e-5).abs() < 1e-18);
        assert!(WarmupCosineLr::new(0.0, 0.0, 1, 2).is_err());
        assert!(WarmupCosineLr::new(1e-3, f64::NAN, 1, 2).is_err());
        // warm-up 0 starts at the peak
        assert_eq!(WarmupCosineLr::new(1.0, 0.0, 0, 10).unwrap().lr_at(0), 1.0);
    }
}
