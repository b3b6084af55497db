//! Preview grids: a few samples drawn every `preview_every` steps, so a person can watch a
//! run learn. What a token grid looks like depends on the data, so the caller passes the
//! decoder: the toy palette, or the image tokenizer.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use image::RgbImage;
use rar_core::{GuidanceSchedule, ScanOrder};
use rar_data::toy::TOY_SIDE;
use rar_data::{RecordSpec, SampleSource};
use rar_model::Rar;
use rar_sample::{SamplingConfig, make_grid};
use rar_vq::Tokenizer;

use crate::config::TrainingConfig;
use crate::error::{Result, TrainError};
use crate::evaluate::sample_grids;

/// Columns of a tokenizer preview.
const PREVIEW_COLUMNS: usize = 5;

/// The reference's preview classes (its tenth is random, here a fixed one).
pub const PREVIEW_CLASSES: [usize; 10] = [1, 7, 282, 604, 724, 179, 751, 404, 850, 88];

/// Turns sampled token grids (one per preview class, in class order, raster order each) into
/// one picture.
pub trait PreviewRenderer: Send + Sync {
    /// The picture of `grids`.
    fn render(&self, grids: &[Vec<u32>]) -> Result<RgbImage>;
}

/// Toy grids through the palette: one row, 4 pixels per token.
#[derive(Debug, Clone, Copy, Default)]
pub struct ToyPreview;

impl PreviewRenderer for ToyPreview {
    fn render(&self, grids: &[Vec<u32>]) -> Result<RgbImage> {
        let (w, h, rgb) = rar_data::render_grid(grids, TOY_SIDE, grids.len(), 4);
        RgbImage::from_raw(w, h, rgb)
            .ok_or_else(|| TrainError::InvalidSetting("toy preview size".into()))
    }
}

/// Grids decoded by the image tokenizer, in rows of five (the reference writes its 10
/// previews as 2 rows × 5).
pub struct TokenizerPreview {
    tokenizer: Mutex<Tokenizer>,
    tokens_per_image: usize,
}

impl TokenizerPreview {
    /// Decodes with `tokenizer`, whose codebook must be the one the data (shape `spec`,
    /// described as `what`) was written with.
    pub fn new(tokenizer: Tokenizer, spec: &RecordSpec, what: &str) -> Result<Self> {
        if tokenizer.codebook_size() != spec.codebook_size {
            return Err(TrainError::InvalidSetting(format!(
                "the tokenizer has {} codes but {what} were written with a codebook of {}",
                tokenizer.codebook_size(),
                spec.codebook_size
            )));
        }
        Ok(Self {
            tokenizer: Mutex::new(tokenizer),
            tokens_per_image: spec.tokens_per_record,
        })
    }
}

impl TokenizerPreview {
    /// [`Self::new`] for the shape and description of `data`.
    pub fn for_data(tokenizer: Tokenizer, data: &dyn SampleSource) -> Result<Self> {
        Self::new(tokenizer, &data.spec(), &data.describe())
    }
}

impl PreviewRenderer for TokenizerPreview {
    fn render(&self, grids: &[Vec<u32>]) -> Result<RgbImage> {
        let flat: Vec<u32> = grids.concat();
        let images = self
            .tokenizer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .decode_tokens_to_images(&flat, self.tokens_per_image)?;
        let cols = PREVIEW_COLUMNS.min(images.len()).max(1);
        Ok(make_grid(&images, images.len().div_ceil(cols), cols)?)
    }
}

impl TrainingConfig {
    /// Previews sampled with `sampling`'s guidance: its scale, and its power when the
    /// schedule is power-cosine (constant guidance otherwise).
    pub fn with_preview_sampling(self, sampling: &SamplingConfig) -> Self {
        let power = match sampling.guidance {
            GuidanceSchedule::PowerCosine { power, .. } => Some(power),
            _ => None,
        };
        self.with_preview_guidance(sampling.guidance.scale())
            .with_preview_guidance_power(power)
    }
}

/// The sampling settings of a run's previews: the configured guidance (power-cosine when a
/// power is set), temperature 1, raster order with the KV cache.
fn preview_sampling(config: &TrainingConfig) -> Result<SamplingConfig> {
    let guidance = match config.preview_guidance_power {
        Some(power) => GuidanceSchedule::power_cosine(config.preview_guidance, power)?,
        None => GuidanceSchedule::constant(config.preview_guidance)?,
    };
    Ok(SamplingConfig {
        guidance,
        temperature: 1.0,
        top_k: None,
        top_p: None,
        order: ScanOrder::RowMajor,
        use_cache: true,
    })
}

/// Samples one grid per preview class (all classes when none are configured) with `model`
/// (an inference model), renders them and writes `dir/preview-{step:08}.png` atomically.
pub fn write_preview(
    dir: &Path,
    step: u64,
    model: &Rar,
    renderer: &dyn PreviewRenderer,
    config: &TrainingConfig,
) -> Result<PathBuf> {
    let classes: Vec<usize> = if config.preview_classes.is_empty() {
        (0..config.model.num_classes).collect()
    } else {
        config.preview_classes.clone()
    };
    let grids = sample_grids(
        model,
        &classes,
        &preview_sampling(config)?,
        config.seed ^ step,
    )?;
    let picture = renderer.render(&grids)?;
    let io = |path: &Path, e: String| TrainError::Write {
        path: path.to_path_buf(),
        reason: e,
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e.to_string()))?;
    let path = dir.join(format!("preview-{step:08}.png"));
    let mut png = Vec::new();
    picture
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| io(&path, e.to_string()))?;
    rar_data::write_atomic(&path, &png).map_err(|e| io(&path, e.to_string()))?;
    Ok(path)
}
