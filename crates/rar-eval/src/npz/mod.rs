//! `.npz` archives: the evaluator's reference batches and sample files, and rar-eval's
//! statistics cache.

mod archive;
mod npy;
mod writer;

pub use archive::NpzFile;
pub(crate) use archive::file_error;
pub use npy::{ElementType, NpyHeader, header_bytes as npy_header};
pub use writer::{NpyArray, write_npz};
