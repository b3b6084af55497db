//! Classifier-free-guidance schedules (the official `generate()` in `modeling/rar.py`).
//!
//! At sampling step `s` of `N` the guided logits are `ℓ_u + g(s)·(ℓ_c − ℓ_u)`. RAR's final
//! models use MDT's power-cosine form with the progress variable increasing, so guidance
//! ramps *up* from 1:
//!
//! ```text
//! g(s) = 1 + (G − 1) · (1 − cos(π · (s/N)^p)) / 2
//! ```
//!
//! It is 1 at `s = 0` (for `p > 0`) and approaches but never reaches `G` (the last step uses
//! `s/N = (N−1)/N`). With `p = 0`, `0⁰ = 1` makes it the constant `G` from the first step.
//! `G = 0` switches guidance off entirely (no unconditional batch); `G = 1` still runs the
//! unconditional branch but equals conditional sampling.
//!
//! Values are computed in f32 with the reference's operation order, so they match its
//! per-step `cfg_scale` to f32 precision.

use crate::{CoreError, Result};
use serde::{Deserialize, Serialize};
use std::f32::consts::PI;

/// How the guidance scale evolves over the `N` sampling steps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum GuidanceSchedule {
    /// `g(s) = G` at every step.
    Constant {
        /// The guidance scale `G` (0 = guidance off).
        scale: f32,
    },
    /// `g(s) = 1 + (G − 1)·s/N`: a linear ramp from 1 towards `G` (the schedule of the paper's
    /// ablations).
    Linear {
        /// The guidance scale `G` (0 = guidance off).
        scale: f32,
    },
    /// `g(s) = 1 + (G − 1)·(1 − cos(π·(s/N)^p))/2`: the final models' schedule.
    PowerCosine {
        /// The guidance scale `G` (0 = guidance off).
        scale: f32,
        /// The power `p` (0 = constant `G`).
        power: f32,
    },
}

fn check(name: &str, v: f32) -> Result<f32> {
    if !v.is_finite() || v < 0.0 {
        return Err(CoreError::InvalidSchedule(format!(
            "{name} must be finite and ≥ 0, got {v}"
        )));
    }
    Ok(v)
}

impl GuidanceSchedule {
    /// A constant schedule; `scale` must be finite and ≥ 0.
    pub fn constant(scale: f32) -> Result<Self> {
        Ok(Self::Constant {
            scale: check("guidance scale", scale)?,
        })
    }

    /// A linear ramp from 1 to `scale`; `scale` must be finite and ≥ 0.
    pub fn linear(scale: f32) -> Result<Self> {
        Ok(Self::Linear {
            scale: check("guidance scale", scale)?,
        })
    }

    /// The power-cosine schedule; `scale` and `power` must be finite and ≥ 0.
    pub fn power_cosine(scale: f32, power: f32) -> Result<Self> {
        Ok(Self::PowerCosine {
            scale: check("guidance scale", scale)?,
            power: check("guidance power", power)?,
        })
    }

    /// Guidance switched off (`G = 0`).
    pub fn off() -> Self {
        Self::Constant { scale: 0.0 }
    }

    /// The guidance scale `G`.
    pub fn scale(&self) -> f32 {
        match *self {
            Self::Constant { scale } | Self::Linear { scale } | Self::PowerCosine { scale, .. } => {
                scale
            }
        }
    }

    /// Whether guidance is on (`G ≠ 0`): only then is the unconditional branch run.
    pub fn is_enabled(&self) -> bool {
        self.scale() != 0.0
    }

    /// `g(step)` for a run of `num_steps` steps. Meaningless when guidance is off.
    pub fn scale_at(&self, step: usize, num_steps: usize) -> f32 {
        let progress = step as f32 / num_steps.max(1) as f32;
        match *self {
            Self::Constant { scale } => scale,
            Self::Linear { scale } => (scale - 1.0) * progress + 1.0,
            Self::PowerCosine { scale, power } => {
                // The reference: (1 - cos((s/N)^p * π)) * 1/2, then (G - 1) * · + 1, all f32.
                let scale_step = (1.0 - (progress.powf(power) * PI).cos()) * 0.5;
                (scale - 1.0) * scale_step + 1.0
            }
        }
    }

    /// `g(s)` for every step `0 … num_steps − 1`.
    pub fn scales(&self, num_steps: usize) -> Vec<f32> {
        (0..num_steps)
            .map(|s| self.scale_at(s, num_steps))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_table_values() {
        // the official `generate()` in `modeling/rar.py`, "Example schedules" (3 decimals).
        let cases = [
            (16.0, 2.75, [1.000, 1.000, 1.018, 1.803, 7.404, 15.996]),
            (15.5, 2.5, [1.000, 1.000, 1.035, 2.090, 7.957, 15.497]),
            (6.9, 1.5, [1.000, 1.000, 1.225, 2.640, 5.285, 6.900]),
            (8.0, 1.2, [1.000, 1.000, 1.602, 3.793, 6.628, 8.000]),
            (4.0, 0.0, [4.0; 6]),
        ];
        for (g, p, expected) in cases {
            let s = GuidanceSchedule::power_cosine(g, p).unwrap();
            for (step, want) in [0, 1, 64, 128, 192, 255].into_iter().zip(expected) {
                let got = s.scale_at(step, 256);
                assert!(
                    (got - want).abs() < 1e-3,
                    "G {g} p {p} s {step}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn invalid_values_are_rejected() {
        assert!(GuidanceSchedule::power_cosine(f32::NAN, 1.0).is_err());
        assert!(GuidanceSchedule::power_cosine(-1.0, 1.0).is_err());
        assert!(GuidanceSchedule::power_cosine(1.0, f32::INFINITY).is_err());
        assert!(GuidanceSchedule::constant(-0.5).is_err());
        assert!(!GuidanceSchedule::off().is_enabled());
        assert!(GuidanceSchedule::linear(1.0).unwrap().is_enabled());
    }

    #[test]
    fn linear_ramps_from_one() {
        let s = GuidanceSchedule::linear(5.0).unwrap();
        assert_eq!(s.scale_at(0, 4), 1.0);
        assert_eq!(s.scale_at(2, 4), 3.0);
    }
}
