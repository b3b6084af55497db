//! # rar-data — RAR's data pipeline
//!
//! Everything between image files and the model's input, without tensors (the crate does not
//! depend on burn's tensor backends, so its tests take seconds):
//!
//! * records and their shape — [`TokenRecord`], [`RecordSpec`] (the one place labels and
//!   token ids are range-checked);
//! * the token-shard format written by pretokenization and read by training — [`shard`]
//!   ([`Shard`](shard::Shard), [`ShardIndex`](shard::ShardIndex)), opened for reading as a
//!   [`ShardSet`];
//! * random access through burn-dataset's [`Dataset`], extended by
//!   [`TokenData`] for bulk reads;
//! * the one sample order of training — seeded, endless, resumable, a pure function of the
//!   position, one window of records in memory at a time — [`StreamConfig`],
//!   [`SampleOrder`], read through a [`SampleStream`] (a trainer sees it as a
//!   [`SampleSource`]);
//! * the embedded toy dataset — [`ToyDataset`] and its validity checker and renderer
//!   ([`toy`]);
//! * image folders and the reference's crops — [`ImageFolder`], [`CropMode`], [`imaging`];
//! * pretokenization with any image encoder — [`pretokenize()`], [`CropEncoder`] (rar-vq
//!   implements it for the MaskGIT-VQGAN tokenizer);
//! * [`write_atomic`], the way every output file is written.
//!
//! ```
//! use rar_data::{SampleSource, SampleStream, StreamConfig, ToyDataset};
//!
//! // 100 toy samples, read in the seeded order training uses.
//! let stream = SampleStream::new(ToyDataset::new(7, 100), StreamConfig::new(42)).unwrap();
//! let batch = stream.read(0, 16).unwrap();
//! assert_eq!(batch.labels.len(), 16);
//! assert_eq!(batch.tokens.len(), 16 * stream.spec().tokens_per_record);
//! // Position 250 is record 50 of epoch 2, the same on every machine and after a resume.
//! assert_eq!(stream.record_at(250).unwrap(), stream.read(250, 1).map(|b| rar_data::TokenRecord {
//!     class: b.labels[0],
//!     tokens: b.tokens,
//! }).unwrap());
//! ```
#![warn(missing_docs)]

mod atomic;
mod crop;
mod error;
mod image_folder;

mod pretokenize;
mod record;
mod resize;
mod source;
mod stream;
mod toy_render;

pub mod order;
pub mod shard;
pub mod toy;

/// Image loading and the reference's preprocessing: PIL-exact resizing, the ADM centre crop
/// and torchvision's ten-crop.
pub mod imaging {
    pub use crate::crop::{adm_center_crop, decode_rgb, five_crop, load_rgb, ten_crop};
    pub use crate::resize::{ResampleFilter, pil_resize};
}

pub use atomic::{check_writable_dir, check_writable_file, temporary_path, write_atomic};
/// burn-dataset's random-access trait, which every dataset of this crate implements.
pub use burn_dataset::Dataset;
pub use crop::CropMode;
pub use error::{DataError, Result};
pub use image_folder::{IMAGE_EXTENSIONS, ImageFolder};
pub use order::{
    DEFAULT_CHUNKS_PER_UNIT, DEFAULT_WINDOW_UNITS, SampleOrder, StorageUnit, StreamConfig,
};
pub use pretokenize::{CropEncoder, PretokenizeConfig, PretokenizeSummary, pretokenize};
pub use record::{RecordSpec, TokenRecord};
pub use shard::set::ShardSet;
pub use source::TokenData;
pub use stream::{Cursor, CursorStats, RecordBatch, SampleSource, SampleStream};
pub use toy::ToyDataset;
pub use toy_render::{render_grid, render_rgb};
