//! Toy runs: the embedded toy dataset (rar-data's [`ToyDataset`]) as a run's training and
//! validation data.

use std::sync::Arc;

use rar_data::{SampleSource, SampleStream, StreamConfig, ToyDataset};

use crate::config::TrainingConfig;
use crate::error::Result;

/// The training data of a toy run: `train_size` toy samples drawn with the run's seed, read
/// in the seeded order of [`SampleStream`] (one uniform shuffle per epoch). Pass it to
/// [`Trainer::new`](crate::Trainer::new), or the function itself to
/// [`Trainer::resume`](crate::Trainer::resume).
pub fn toy_training_data(config: &TrainingConfig) -> Result<Arc<dyn SampleSource>> {
    let data = ToyDataset::new(config.seed, config.train_size);
    Ok(Arc::new(SampleStream::new(
        data,
        StreamConfig::new(config.seed),
    )?))
}

/// The validation split of a toy run: `val_size` samples drawn with another seed.
pub fn toy_validation_data(config: &TrainingConfig) -> ToyDataset {
    ToyDataset::new(config.seed.wrapping_add(1), config.val_size)
}
