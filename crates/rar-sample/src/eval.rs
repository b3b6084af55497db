//! The 50 000-sample evaluation set for the ADM evaluator (the official `sample_imagenet_rar.py`).
//!
//! The reference samples the class list `0, 1, …, K−1` repeated `per_class` times (class-major
//! cycles), so image `i` has class `i mod K` and every class appears exactly `per_class` times;
//! the images are decoded, converted to uint8 with `floor(255·x)`, and stored in index order as
//! `arr_0` `[K·per_class, H, W, 3]` of an `.npz`.
//!
//! Here batch `b` covers images `b·B … (b+1)·B − 1` and seeds the device with `seed + b`, so a
//! run can be interrupted and resumed at any image and still produce the same file on the same
//! backend ([`NpzWriter`] keeps what was written and says where to continue). The reference's
//! own token streams (PyTorch's CUDA generator seeded `42 + rank`) cannot be reproduced outside
//! PyTorch; only their distribution can.

use std::ops::Range;
use std::path::{Path, PathBuf};

use burn::tensor::Int;
use burn::tensor::Tensor;
use rar_vq::Tokenizer;

use crate::error::{Result, SampleError};
use crate::npz::NpzWriter;
use crate::sampler::{Sampler, SamplingConfig};

/// Which images make up the evaluation set and how they are batched and seeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvalSet {
    /// Images per class (50 for the standard 50k set).
    pub per_class: usize,
    /// Number of classes `K`.
    pub num_classes: usize,
    /// Images per sampling batch (the reference uses 50 per process).
    pub batch_size: usize,
    /// Base seed; batch `b` uses `seed + b`.
    pub seed: u64,
}

impl EvalSet {
    /// The standard ImageNet set: 50 images × 1000 classes, batches of 50, seed 42.
    pub const IMAGENET_50K: Self = Self {
        per_class: 50,
        num_classes: 1000,
        batch_size: 50,
        seed: 42,
    };

    /// Total number of images (saturating; [`Self::validate`] refuses a set whose count
    /// overflows).
    pub fn len(&self) -> usize {
        self.per_class.saturating_mul(self.num_classes)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The class of image `index` (class-major cycles: `index mod K`).
    pub fn class_of(&self, index: usize) -> usize {
        index % self.num_classes
    }

    /// Number of batches (the last may be short).
    pub fn num_batches(&self) -> usize {
        self.len().div_ceil(self.batch_size.max(1))
    }

    /// The image indices of batch `b`.
    pub fn batch(&self, b: usize) -> Range<usize> {
        let start = b * self.batch_size;
        start..(start + self.batch_size).min(self.len())
    }

    /// The seed of batch `b`.
    pub fn batch_seed(&self, b: usize) -> u64 {
        self.seed.wrapping_add(b as u64)
    }

    /// Checks the set: every count positive, and `per_class × num_classes` representable.
    pub fn validate(&self) -> Result<()> {
        if self.per_class == 0 || self.num_classes == 0 || self.batch_size == 0 {
            return Err(SampleError::InvalidRequest(format!(
                "evaluation set needs per_class, num_classes and batch_size > 0, got {self:?}"
            )));
        }
        if self.per_class.checked_mul(self.num_classes).is_none() {
            return Err(SampleError::InvalidRequest(format!(
                "per_class {} × {} classes overflows",
                self.per_class, self.num_classes
            )));
        }
        Ok(())
    }

    /// The settings that decide the images of this set with `sampling`, from a model of
    /// `model` and a tokenizer with `codebook` codes; `origin` names where the weights came
    /// from (recorded so that a resume with other weights is refused).
    pub fn manifest(
        &self,
        sampling: &SamplingConfig,
        model: &rar_model::RarConfig,
        codebook: usize,
        origin: &str,
    ) -> serde_json::Value {
        serde_json::json!({
            "set": {
                "per_class": self.per_class,
                "num_classes": self.num_classes,
                "batch_size": self.batch_size,
                "seed": self.seed,
            },
            "sampling": {
                "guidance": format!("{:?}", sampling.guidance),
                "temperature": sampling.temperature,
                "top_k": sampling.top_k,
                "top_p": sampling.top_p,
                "order": sampling.order.to_string(),
                "use_cache": sampling.use_cache,
            },
            "model": model.to_string(),
            "tokenizer_codebook": codebook,
            "origin": origin,
        })
    }
}

/// Samples, decodes and streams the evaluation set into `path`, resuming `<path>.partial` if
/// it was started with the same settings ([`EvalSet::manifest`]; `origin` names the weights)
/// and refusing it otherwise. `progress(done, total)` is called after every batch. Returns
/// the final path.
pub fn write_eval_npz(
    sampler: &mut Sampler,
    tokenizer: &Tokenizer,
    options: &SamplingConfig,
    set: &EvalSet,
    path: impl AsRef<Path>,
    origin: &str,
    mut progress: impl FnMut(usize, usize),
) -> Result<PathBuf> {
    set.validate()?;
    options.validate()?;
    let config = sampler.model().config();
    if set.num_classes > config.num_classes {
        return Err(SampleError::InvalidRequest(format!(
            "evaluation set over {} classes, the model knows {}",
            set.num_classes, config.num_classes
        )));
    }
    if config.codebook_size > tokenizer.codebook_size() {
        return Err(SampleError::InvalidRequest(format!(
            "the model predicts {} codes, the tokenizer has {}",
            config.codebook_size,
            tokenizer.codebook_size()
        )));
    }
    let side = rar_core::scan::grid_side(config.image_seq_len)?;
    let pixels = side * tokenizer.downsample_factor();
    let manifest = set.manifest(options, config, tokenizer.codebook_size(), origin);
    let mut writer = NpzWriter::create_or_resume(path, [set.len(), pixels, pixels, 3], &manifest)?;
    let total = set.len();
    progress(writer.images_written(), total);
    while writer.images_written() < total {
        let done = writer.images_written();
        let b = done / set.batch_size;
        let range = set.batch(b);
        let classes: Vec<usize> = range.clone().map(|i| set.class_of(i)).collect();
        let tokens: Tensor<2, Int> = sampler.sample(&classes, options, Some(set.batch_seed(b)))?;
        let images = tokenizer.decode(tokens)?;
        let (bytes, [_, h, w, c]) = rar_vq::tensor_to_u8_hwc(images)?;
        let per = h * w * c;
        // after a resume inside a batch, skip the images already on disk
        for image in bytes.chunks_exact(per).skip(done - range.start) {
            writer.push(image)?;
        }
        writer.flush()?;
        progress(writer.images_written(), total);
    }
    Ok(writer.finish()?)
}
