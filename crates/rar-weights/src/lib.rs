//! # rar-weights — one way to read and write weight files
//!
//! The RAR generator (`rar-model`) and the MaskGIT-VQGAN tokenizer (`rar-vq`) both load the
//! official PyTorch checkpoints unchanged and write files the reference can read back. This
//! crate is the single mechanism behind both:
//!
//! * [`WeightFormat`] — the container, told apart by extension (`.bin`/`.pt`/`.pth`,
//!   `.safetensors`, `.bpk`);
//! * [`Naming`] — how module paths correspond to the reference's keys, one rename table used
//!   in both directions (loading, saving, and naming the key in an error);
//! * [`WeightFile`] — a file opened for reading: its tensor index (read without tensor data,
//!   guarded so that a malformed file is an error, never a crash), checked against the layout a
//!   configuration implies ([`ExpectedTensor`]) before anything is allocated, then applied to a
//!   module and checked for NaN or infinite values;
//! * [`save_safetensors`] / [`save_burnpack`] — writing a module in the reference's or burn's
//!   naming;
//! * [`WeightError`] — the one error vocabulary: unknown format, unreadable file, missing,
//!   unexpected, wrongly shaped, wrongly typed or non-finite tensor, each naming the file and
//!   the key.
//!
//! Linear weights are `[out, in]` in PyTorch and `[in, out]` in burn, and normalisation layers
//! call their affine parameters `weight`/`bias` in PyTorch and `gamma`/`beta` in burn;
//! burn-store's [`PyTorchToBurnAdapter`](burn::store::PyTorchToBurnAdapter) handles both from
//! the module types, so a [`Naming`] only lists what differs beyond that.
//!
//! ```
//! use burn::nn::{Linear, LinearConfig};
//! use burn::tensor::Device;
//! use rar_weights::{ExpectedTensor, Naming, WeightFile, WeightFormat, save_safetensors};
//!
//! let device = Device::flex();
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("head.safetensors");
//! let head: Linear = LinearConfig::new(4, 3).init(&device);
//! save_safetensors(&head, &path, &Naming::new()).unwrap();
//!
//! // Read it back the way the model loaders do: index, check, apply.
//! let naming = Naming::new();
//! let file = WeightFile::open(&path, &[WeightFormat::Safetensors], &naming).unwrap();
//! let layout = [ExpectedTensor::new("weight", [3, 4]), ExpectedTensor::new("bias", [3])];
//! file.check(&layout, rar_weights::DTypeRule::AnyFloat).unwrap();
//! let fresh: Linear = LinearConfig::new(4, 3).init(&device);
//! let loaded = file.load_into(fresh, &naming).unwrap();
//! assert_eq!(loaded.weight.val().into_data(), head.weight.val().into_data());
//! ```
#![warn(missing_docs)]

mod check;
mod error;
mod file;
mod finite;
mod format;
mod naming;
mod params;
mod save;

pub use check::{DTypeRule, ExpectedTensor, StoredTensor};
pub use error::{Result, WeightError};
pub use file::WeightFile;
pub use format::WeightFormat;
pub use naming::Naming;
pub use params::{ModuleParam, module_parameters};
pub use save::{save_burnpack, save_safetensors};
