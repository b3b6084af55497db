//! What the evaluator keeps of one image set: the `pool_3` features (for precision and
//! recall), the Gaussians of the pooled and spatial features (FID, sFID) and the Inception
//! Score, computed in one streaming pass.

use crate::error::Result;
use crate::gaussian::Gaussian;
use crate::images::ImageStream;
use crate::inception::{InceptionExtractor, POOL_FEATURES, SPATIAL_FEATURES};
use crate::inception_score::{IS_SPLIT_SIZE, inception_score};
use crate::moments::MomentAccumulator;

/// The statistics of one image set.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureSet {
    /// Images.
    pub count: usize,
    /// `pool_3` features, `[count, 2048]` row-major.
    pub pool: Vec<f32>,
    /// Mean and covariance of `pool` (FID).
    pub pool_stats: Gaussian,
    /// Mean and covariance of the spatial features (sFID).
    pub spatial_stats: Gaussian,
    /// Inception Score over splits of [`IS_SPLIT_SIZE`].
    pub inception_score: f64,
}

/// Softmax of one row of logits in f64, stored as f32 like the evaluator's float32 softmax.
fn softmax_into(logits: &[f32], out: &mut Vec<f32>) {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
    let exp: Vec<f64> = logits.iter().map(|&v| (v as f64 - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    out.extend(exp.iter().map(|e| (e / sum) as f32));
}

/// The Inception Score computed split by split as rows arrive, so that no more than one
/// split of probabilities is held.
struct StreamingInceptionScore {
    classes: usize,
    split: Vec<f32>,
    scores: Vec<f64>,
}

impl StreamingInceptionScore {
    fn push(&mut self, logits: &[f32]) -> Result<()> {
        for row in logits.chunks(self.classes) {
            softmax_into(row, &mut self.split);
            if self.split.len() == IS_SPLIT_SIZE * self.classes {
                self.close()?;
            }
        }
        Ok(())
    }

    fn close(&mut self) -> Result<()> {
        if !self.split.is_empty() {
            self.scores
                .push(inception_score(&self.split, self.classes, IS_SPLIT_SIZE)?);
            self.split.clear();
        }
        Ok(())
    }

    fn finish(mut self) -> Result<f64> {
        self.close()?;
        Ok(self.scores.iter().sum::<f64>() / self.scores.len() as f64)
    }
}

impl FeatureSet {
    /// Streams `images` through `extractor`, calling `progress(done, total)` after each
    /// batch.
    pub fn compute(
        extractor: &InceptionExtractor,
        images: ImageStream,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Self> {
        let total = images.len();
        let classes = extractor.model().fc.weight.dims()[1];
        let mut pool = Vec::with_capacity(total * POOL_FEATURES);
        let mut pool_moments = MomentAccumulator::new(POOL_FEATURES);
        let mut spatial_moments = MomentAccumulator::new(SPATIAL_FEATURES);
        let mut score = StreamingInceptionScore {
            classes,
            split: Vec::new(),
            scores: Vec::new(),
        };
        let mut done = 0;
        for batch in images {
            let batch = batch?;
            let f = extractor.extract(&batch.pixels, batch.count, batch.height, batch.width)?;
            pool_moments.add(&f.pool)?;
            spatial_moments.add(&f.spatial)?;
            score.push(&f.logits)?;
            pool.extend_from_slice(&f.pool);
            done += batch.count;
            progress(done, total);
        }
        Ok(Self {
            count: done,
            pool,
            pool_stats: pool_moments.finish()?,
            spatial_stats: spatial_moments.finish()?,
            inception_score: score.finish()?,
        })
    }
}
