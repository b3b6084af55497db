//! Streaming, resumable writer for the ADM evaluator's sample file: an `.npz` holding one
//! uint8 array `arr_0` of shape `[N, H, W, 3]` (the official `sample_imagenet_rar.py`).
//!
//! The 50 000-image evaluation set is ~9.8 GB, so the file is written image by image and never
//! held in memory. Layout (what `numpy.load` expects from `numpy.savez`):
//!
//! * a zip archive with a single **stored** (uncompressed) member `arr_0.npy`, using zip64
//!   sizes and offsets so members over 4 GiB work;
//! * the member is an NPY v1.0 file: magic, a header dict
//!   `{'descr': '|u1', 'fortran_order': False, 'shape': (N, H, W, 3), }` padded to a
//!   64-byte boundary, then the raw bytes in C order.
//!
//! Because the member size is known up front, the local header is written first with its
//! final sizes and a CRC placeholder; [`NpzWriter::finish`] patches the CRC, appends the
//! central directory and zip64 end records, and atomically renames `<path>.partial` to
//! `<path>`.
//!
//! Interrupted runs resume: see [`NpzWriter`].

mod error;
mod format;
mod manifest;
mod writer;

pub use error::NpzError;
pub use writer::NpzWriter;
