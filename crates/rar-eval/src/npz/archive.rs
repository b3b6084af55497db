//! Reading arrays from an `.npz` (numpy's `savez` / `savez_compressed`: a zip archive of
//! `<name>.npy` members, stored or deflated).

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use zip::ZipArchive;

use super::npy::{ElementType, NpyHeader};
use crate::error::{EvalError, Result};

/// An open `.npz` archive.
pub struct NpzFile {
    path: PathBuf,
    archive: ZipArchive<BufReader<File>>,
}

impl std::fmt::Debug for NpzFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NpzFile").field("path", &self.path).finish()
    }
}

pub(crate) fn file_error(path: &Path, reason: impl Into<String>) -> EvalError {
    EvalError::File {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

impl NpzFile {
    /// Opens `path` and reads its zip directory.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| file_error(path, e.to_string()))?;
        let archive = ZipArchive::new(BufReader::new(file))
            .map_err(|e| file_error(path, format!("not an .npz (zip) archive: {e}")))?;
        Ok(Self {
            path: path.to_path_buf(),
            archive,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The arrays it holds (member names without `.npy`).
    pub fn names(&self) -> Vec<String> {
        self.archive
            .file_names()
            .filter_map(|n| n.ok())
            .filter_map(|n| n.strip_suffix(".npy").map(str::to_string))
            .collect()
    }

    /// Whether it holds array `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.archive
            .index_for_name(&format!("{name}.npy"))
            .is_some()
    }

    /// A reader positioned at the first data byte of array `name`, and its header.
    pub(crate) fn array(&mut self, name: &str) -> Result<(NpyHeader, impl Read + '_)> {
        let path = self.path.clone();
        let member = format!("{name}.npy");
        let known = self.names().join(", ");
        let mut reader = self.archive.by_name(&member).map_err(|e| {
            file_error(&path, format!("no array '{name}' ({e}); it holds: {known}"))
        })?;
        let header = NpyHeader::read(&mut reader)
            .map_err(|e| file_error(&path, format!("array '{name}': {e}")))?;
        Ok((header, reader))
    }

    /// The header of array `name`.
    pub fn header(&mut self, name: &str) -> Result<NpyHeader> {
        Ok(self.array(name)?.0)
    }

    /// Array `name` as stored: its header and its raw little-endian bytes.
    pub fn read_raw(&mut self, name: &str) -> Result<(NpyHeader, Vec<u8>)> {
        let path = self.path.clone();
        let (header, mut reader) = self.array(name)?;
        let mut bytes = vec![0u8; header.elements() * header.dtype.size()];
        reader
            .read_exact(&mut bytes)
            .map_err(|e| file_error(&path, format!("array '{name}' is truncated: {e}")))?;
        Ok((header, bytes))
    }

    /// Array `name` (any supported type) as f64, with its shape.
    pub fn read_f64(&mut self, name: &str) -> Result<(Vec<usize>, Vec<f64>)> {
        let (header, bytes) = self.read_raw(name)?;
        let values = match header.dtype {
            ElementType::F64 => bytes
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
                .collect(),
            ElementType::F32 => f32s(&bytes).map(f64::from).collect(),
            ElementType::U8 => bytes.iter().map(|&b| b as f64).collect(),
        };
        Ok((header.shape, values))
    }

    /// Array `name` (f32) with its shape.
    pub fn read_f32(&mut self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let (header, bytes) = self.read_raw(name)?;
        if header.dtype != ElementType::F32 {
            return Err(file_error(
                &self.path,
                format!("array '{name}' holds {:?}, expected float32", header.dtype),
            ));
        }
        Ok((header.shape, f32s(&bytes).collect()))
    }
}

fn f32s(bytes: &[u8]) -> impl Iterator<Item = f32> + '_ {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
}
