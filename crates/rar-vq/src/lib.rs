//! # rar-vq — the MaskGIT-VQGAN tokenizer on burn
//!
//! RAR sees images only as 256 code ids on a 16×16 grid; this crate turns pictures into those
//! ids and back with the tokenizer the released models were trained with
//! (`maskgit-vqgan-imagenet-f16-256.bin`, loaded unchanged):
//!
//! * [`Tokenizer`] ([`TokenizerConfig`], [`Tokenizer::from_file`]): `encode` images
//!   `[B, 3, 256, 256]` in `[0, 1]` to ids `[B, 256]`, `decode` ids to images in `[0, 1]`,
//!   [`Tokenizer::decode_to_images`] straight to 8-bit RGB;
//! * [`images_to_tensor`], [`tensor_to_images`], [`tensor_to_u8_hwc`]: 8-bit RGB ⇄ tensors
//!   (the reference's `ToTensor()` and its truncating uint8 cast);
//! * the tokenizer is rar-data's [`CropEncoder`](rar_data::CropEncoder), so
//!   [`rar_data::pretokenize`] writes ImageNet token shards with it.
//!
//! ```
//! use burn::tensor::{Device, Tensor};
//! use rar_vq::TokenizerConfig;
//!
//! // A tiny random tokenizer: 32×32 images, three levels (factor 4): an 8×8 grid of 16 codes.
//! let device = Device::flex();
//! let tokenizer = TokenizerConfig::new()
//!     .with_base_channels(8)
//!     .with_channel_multipliers(vec![1, 2, 2])
//!     .with_num_res_blocks(1)
//!     .with_z_channels(4)
//!     .with_codebook_size(16)
//!     .with_norm_groups(4)
//!     .with_resolution(32)
//!     .init(&device)
//!     .unwrap();
//! let images = Tensor::<4>::ones([2, 3, 32, 32], &device).mul_scalar(0.5);
//! let ids = tokenizer.encode(images).unwrap();
//! assert_eq!(ids.dims(), [2, 64]);
//! let pictures = tokenizer.decode_to_images(ids).unwrap();
//! assert_eq!(pictures[0].dimensions(), (32, 32));
//! ```
#![warn(missing_docs)]

mod config;
mod conv;
mod convert;
mod crop_encoder;
mod decoder;
mod encoder;
mod error;
mod quantizer;
mod resblock;
mod tokenizer;
mod weights;

pub use config::TokenizerConfig;
pub use convert::{images_to_tensor, tensor_to_images, tensor_to_u8_hwc};
pub use error::{Result, VqError};
pub use tokenizer::Tokenizer;
pub use weights::{OFFICIAL_CHECKPOINT_NAME, read_tensor_info};
