//! Sampling flags: the toy examples' constant guidance, and the released models' preset
//! settings with overrides.

use rar::core::{GuidanceSchedule, ScanOrder};
use rar::model::RarPreset;
use rar::sample::SamplingConfig;

// (a plain comment: clap would show a doc comment as the program's description)
// How the toy examples sample: constant guidance, temperature and optional filtering, raster
// order with the KV cache (`--guidance`, `--temperature`, `--top-k`, `--top-p`).
#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct ToySampling {
    /// Classifier-free guidance scale (constant; 0 = off).
    #[arg(long, default_value_t = 2.0)]
    pub guidance: f32,
    /// Sampling temperature.
    #[arg(long, default_value_t = 0.8)]
    pub temperature: f32,
    /// Keep only the k most likely colours at each step.
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Nucleus sampling mass.
    #[arg(long)]
    pub top_p: Option<f32>,
}

impl ToySampling {
    /// The sampler options (raster order, KV cache on); a negative or non-finite guidance
    /// scale is an error.
    pub fn options(&self) -> rar::core::Result<SamplingConfig> {
        Ok(SamplingConfig {
            guidance: if self.guidance == 0.0 {
                GuidanceSchedule::off()
            } else {
                GuidanceSchedule::constant(self.guidance)?
            },
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            order: ScanOrder::RowMajor,
            use_cache: true,
        })
    }
}

// (a plain comment: clap would show a doc comment as the program's description)
// How the ImageNet examples sample: the preset's recommended settings
// ([`SamplingConfig::preset`]), each overridable.
#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct PresetSampling {
    /// Guidance scale G (0 = off) [default: the preset's].
    #[arg(long)]
    pub guidance: Option<f32>,
    /// Power p of the power-cosine guidance schedule [default: the preset's].
    #[arg(long)]
    pub guidance_pow: Option<f32>,
    /// Softmax temperature [default: the preset's].
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Keep only the k most likely tokens at each step.
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Nucleus sampling mass.
    #[arg(long)]
    pub top_p: Option<f32>,
    /// Generation order (row-major for the released models).
    #[arg(long, default_value = "row-major")]
    pub order: ScanOrder,
}

impl PresetSampling {
    /// The preset's settings with the flags given applied.
    pub fn config(&self, preset: RarPreset) -> rar::core::Result<SamplingConfig> {
        let base = SamplingConfig::preset(preset);
        let (scale, power) = match base.guidance {
            GuidanceSchedule::PowerCosine { scale, power } => (scale, power),
            other => (other.scale(), 0.0),
        };
        Ok(SamplingConfig {
            guidance: GuidanceSchedule::power_cosine(
                self.guidance.unwrap_or(scale),
                self.guidance_pow.unwrap_or(power),
            )?,
            temperature: self.temperature.unwrap_or(base.temperature),
            top_k: self.top_k,
            top_p: self.top_p,
            order: self.order,
            use_cache: true,
        })
    }
}

/// Parses a `--precision` value (`f32`, `fp32` or `bf16`) for clap's `value_parser`.
pub fn parse_precision(name: &str) -> Result<rar::model::ComputePrecision, String> {
    rar::model::ComputePrecision::parse(name).map_err(|e| e.to_string())
}
