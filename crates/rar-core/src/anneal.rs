//! Randomness annealing (paper §3.2, Eq. 5).
//!
//! During training each sample's factorisation order is a uniformly random permutation with
//! probability `r`, the raster order otherwise. `r` starts at 1 and is annealed linearly to 0:
//!
//! ```text
//! r(t) = 1                                  t < start
//! r(t) = 1 − (t − start) / (end − start)    start ≤ t ≤ end
//! r(t) = 0                                  t > end
//! ```
//!
//! `t` is the 0-based count of optimizer steps already taken (the reference's `global_step`
//! before the update). The paper states the schedule in epochs (start 200, end 300 of 400);
//! the reference evaluates it per optimizer step, so `r` decays continuously —
//! [`RandomnessSchedule::from_epochs`] converts.

use crate::{CoreError, Result};
use serde::{Deserialize, Serialize};

/// The linear randomness-annealing schedule over optimizer steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RandomnessSchedule {
    /// Optimizer step at which `r` starts to decay (inclusive: `r(start) = 1`).
    pub start: u64,
    /// Optimizer step at which `r` reaches 0 (`r(end) = 0`).
    pub end: u64,
}

impl RandomnessSchedule {
    /// The official RAR recipe: decay from step 125 000 to 187 500 (of 250 000), i.e. epochs
    /// 200 → 300 of 400 at batch 2048 (the official `configs/training/generator/rar.yaml`).
    pub const OFFICIAL: Self = Self {
        start: 125_000,
        end: 187_500,
    };

    /// A schedule decaying from `start` to `end` (optimizer steps). `start == end` is a step
    /// function (1 before, 0 from then on); `start > end` is an error.
    pub fn new(start: u64, end: u64) -> Result<Self> {
        if start > end {
            return Err(CoreError::InvalidSchedule(format!(
                "randomness anneal start ({start}) is after its end ({end})"
            )));
        }
        Ok(Self { start, end })
    }

    /// Always raster (`r = 0` from step 0): the paper's "start = end = 0" ablation.
    pub fn raster_only() -> Self {
        Self { start: 0, end: 0 }
    }

    /// Always random (`r = 1` for every step below `u64::MAX`): the paper's
    /// "start = end = 400 epochs" ablation.
    pub fn random_only() -> Self {
        Self {
            start: u64::MAX,
            end: u64::MAX,
        }
    }

    /// The paper's epoch form: decay between epochs `start_epoch` and `end_epoch` with
    /// `steps_per_epoch` optimizer steps per epoch (fractional values allowed; rounded to
    /// the nearest step).
    pub fn from_epochs(start_epoch: f64, end_epoch: f64, steps_per_epoch: f64) -> Result<Self> {
        for (name, v) in [
            ("start_epoch", start_epoch),
            ("end_epoch", end_epoch),
            ("steps_per_epoch", steps_per_epoch),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(CoreError::InvalidSchedule(format!(
                    "{name} must be finite and ≥ 0, got {v}"
                )));
            }
        }
        Self::new(
            (start_epoch * steps_per_epoch).round() as u64,
            (end_epoch * steps_per_epoch).round() as u64,
        )
    }

    /// The random-order probability `r` at 0-based optimizer step `step`.
    ///
    /// Evaluated with the reference's f64 operations, so it reproduces its values exactly
    /// (e.g. `r(101) = 0.995` for start 100, end 300).
    pub fn ratio(&self, step: u64) -> f64 {
        if step < self.start {
            1.0
        } else if step >= self.end {
            // Covers `start == end` without dividing by zero; the formula gives 0 at `end`.
            0.0
        } else {
            1.0 - (step - self.start) as f64 / (self.end - self.start) as f64
        }
    }
}

impl Default for RandomnessSchedule {
    fn default() -> Self {
        Self::OFFICIAL
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_points_and_degenerate_schedules() {
        let s = RandomnessSchedule::new(10, 10).unwrap();
        assert_eq!(s.ratio(9), 1.0);
        assert_eq!(s.ratio(10), 0.0);
        assert_eq!(RandomnessSchedule::raster_only().ratio(0), 0.0);
        assert_eq!(RandomnessSchedule::random_only().ratio(1 << 40), 1.0);
        assert!(RandomnessSchedule::new(5, 4).is_err());
        assert!(RandomnessSchedule::from_epochs(1.0, f64::NAN, 10.0).is_err());
    }

    #[test]
    fn epoch_form_matches_the_official_steps() {
        // 250 000 steps over 400 epochs = 625 steps per epoch.
        let s = RandomnessSchedule::from_epochs(200.0, 300.0, 625.0).unwrap();
        assert_eq!(s, RandomnessSchedule::OFFICIAL);
    }
}
