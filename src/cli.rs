//! Command-line pieces shared by the examples: the toy-dataset sampling flags (`quickstart`,
//! `ablation_annealing`) and the `--precision` parser (`quickstart`, `train_imagenet`,
//! `train_bench`).

use rar_core::{GuidanceSchedule, ScanOrder};
use rar_sample::SamplingOptions;

/// How the toy examples sample: constant guidance, temperature and optional filtering, raster
/// order with the KV cache (`--guidance`, `--temperature`, `--top-k`, `--top-p`).
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
    pub fn options(&self) -> rar_core::Result<SamplingOptions> {
        Ok(SamplingOptions {
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

/// Parses a `--precision` value (`f32`, `fp32` or `bf16`) for clap's `value_parser`.
pub fn parse_precision(name: &str) -> Result<rar_model::ComputePrecision, String> {
    rar_model::ComputePrecision::parse(name).map_err(|e| e.to_string())
}
