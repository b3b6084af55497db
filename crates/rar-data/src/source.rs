//! What a sample stream reads: labelled token data with random access.

use burn_dataset::Dataset;

use crate::error::{DataError, Result};
use crate::order::StorageUnit;
use crate::record::{RecordSpec, TokenRecord};

/// Labelled token data: burn-dataset's [`Dataset`] of [`TokenRecord`]s (random access by
/// index) plus what a [`SampleStream`](crate::SampleStream) needs to read it in bulk, in its
/// seeded order, and to say what it is.
pub trait TokenData: Dataset<TokenRecord, DataError> {
    /// The shape of every record.
    fn spec(&self) -> RecordSpec;

    /// What the data is, for messages (`"the token shards in /data/tokens"`).
    fn describe(&self) -> String;

    /// What identifies this data's content (record count, storage, a fingerprint), recorded
    /// by a training run so that a resume on other data is refused.
    fn identity(&self) -> String;

    /// How the records are stored: contiguous units (files) that chunks of the sample order
    /// never cross, in index order. Default: one unit of all records, one record per image.
    fn units(&self) -> Vec<StorageUnit> {
        vec![StorageUnit {
            records: self.len() as u64,
            granule: 1,
        }]
    }

    /// Reads the `labels.len()` consecutive records from index `start` (all inside one
    /// storage unit) into `labels` and `tokens` (`tokens_per_record` each). Default: one
    /// [`Dataset::get`] per record.
    fn read_run(&self, start: u64, labels: &mut [u16], tokens: &mut [u16]) -> Result<()> {
        let n = self.spec().tokens_per_record;
        for (i, label) in labels.iter_mut().enumerate() {
            let index = start as usize + i;
            let record = self.get(index)?;
            *label = record.class;
            tokens[i * n..(i + 1) * n].copy_from_slice(&record.tokens);
        }
        Ok(())
    }
}
