//! Writing a small `.npz` (stored members, zip64 when large) that `numpy.load` reads:
//! rar-eval's statistics cache.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use super::archive::file_error;
use super::npy::{ElementType, header_bytes};
use crate::error::Result;

/// One array to write: its data and shape.
#[derive(Debug, Clone, Copy)]
pub enum NpyArray<'a> {
    /// uint8.
    U8(&'a [u8], &'a [usize]),
    /// float32.
    F32(&'a [f32], &'a [usize]),
    /// float64.
    F64(&'a [f64], &'a [usize]),
}

impl NpyArray<'_> {
    fn write(&self, w: &mut impl Write) -> std::io::Result<()> {
        let (dtype, shape) = match self {
            Self::U8(_, s) => (ElementType::U8, *s),
            Self::F32(_, s) => (ElementType::F32, *s),
            Self::F64(_, s) => (ElementType::F64, *s),
        };
        w.write_all(&header_bytes(dtype, shape))?;
        match self {
            Self::U8(v, _) => w.write_all(v),
            Self::F32(v, _) => v.iter().try_for_each(|x| w.write_all(&x.to_le_bytes())),
            Self::F64(v, _) => v.iter().try_for_each(|x| w.write_all(&x.to_le_bytes())),
        }
    }
}

/// Writes `arrays` to `path` atomically: into `<path>.partial`, then renamed, so a failed
/// write never leaves a truncated file where a good one was.
pub fn write_npz(path: &Path, arrays: &[(&str, NpyArray<'_>)]) -> Result<()> {
    let partial = path.with_extension("partial");
    let fail = |e: String| file_error(path, e);
    let write = || -> std::result::Result<(), String> {
        let file = File::create(&partial).map_err(|e| e.to_string())?;
        let mut zip = ZipWriter::new(BufWriter::new(file));
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Stored)
            .large_file(true);
        for (name, array) in arrays {
            zip.start_file(format!("{name}.npy"), options)
                .map_err(|e| e.to_string())?;
            array.write(&mut zip).map_err(|e| e.to_string())?;
        }
        let mut inner = zip.finish().map_err(|e| e.to_string())?;
        inner.flush().map_err(|e| e.to_string())?;
        inner
            .into_inner()
            .map_err(|e| e.to_string())?
            .sync_all()
            .map_err(|e| e.to_string())?;
        std::fs::rename(&partial, path).map_err(|e| e.to_string())
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&partial);
        fail(e)
    })
}
