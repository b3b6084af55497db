//! MaskGIT-VQGAN tokenizer on burn: encoder, vector quantizer and decoder, loading of the
//! official `maskgit-vqgan-imagenet-f16-256.bin` weights, image I/O and ImageNet
//! pretokenization (spec §8–§9).
//!
//! RAR sees images only as 256 code ids on a 16×16 grid; this crate turns pictures into those
//! ids and back.
//!
//! * [`Tokenizer`] ([`TokenizerConfig`], [`Tokenizer::from_file`]): `encode` images
//!   `[B, 3, 256, 256]` in `[0, 1]` to ids `[B, 256]`, `decode` ids to images in `[0, 1]`,
//!   [`Tokenizer::decode_to_images`] straight to 8-bit RGB.
//! * [`grid::write_png_grid`]: tile images into one PNG.
//! * [`preprocess`]: image loading and the reference's ADM centre crop / ten-crop.
//! * [`pretokenize()`](pretokenize::pretokenize) writes token shards ([`shard`]);
//!   [`TokenDataset`] reads a finished run back for training, all in memory;
//!   [`ShardStream`] ([`stream`]) streams it instead with bounded memory (a few shards' worth),
//!   in a seeded shuffled order that is a pure function of `(seed, epoch, position)`, with
//!   random access by global position for exact resume.
#![warn(missing_docs)]

pub mod config;
pub mod conv;
pub mod convert;
pub mod decoder;
pub mod encoder;
pub mod error;
pub mod grid;
pub mod preprocess;
pub mod pretokenize;
pub mod quantizer;
pub mod resblock;
pub mod shard;
pub mod stream;
pub mod tokenizer;
pub mod weights;

pub use config::TokenizerConfig;
pub use convert::{images_to_tensor, tensor_to_images, tensor_to_u8_hwc};
pub use error::{Result, VqError};
pub use grid::{make_grid, write_png_grid, write_png_grid_u8};
pub use preprocess::{CropMode, adm_center_crop, load_rgb, ten_crop};
pub use pretokenize::{
    ImageFolder, PretokenizeOptions, PretokenizeSummary, ShardIndex, TokenDataset, pretokenize,
};
pub use shard::{Shard, ShardHeader};
pub use stream::{CursorStats, RecordLocation, ShardCursor, ShardStream, StreamOptions};
pub use tokenizer::Tokenizer;
pub use weights::{OFFICIAL_CHECKPOINT_NAME, WeightsFormat, read_tensor_info};

/// Re-exported so tools built on this crate (the `pretokenize_imagenet` example) need no
/// direct dependency on it.
pub use indicatif;
