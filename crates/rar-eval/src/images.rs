//! Image sets streamed in batches: the `arr_0` of an `.npz` (what `sample_imagenet` and the
//! official sampling script write, and the reference batch's images) or a folder of PNGs.
//!
//! A reader thread decodes ahead of the consumer through a channel of two batches, so file
//! reading overlaps the network and memory holds at most three batches whatever the set's
//! size (50 000 images of 256² are 9.8 GB; they are never in memory together).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use rayon::prelude::*;

use crate::error::{EvalError, Result};
use crate::npz::{ElementType, NpzFile, file_error};

/// The array of an `.npz` that holds the images (the evaluator reads `arr_0`).
pub const IMAGES_ARRAY: &str = "arr_0";

/// Consecutive images of a set: uint8 RGB, `[count, height, width, 3]` row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageBatch {
    /// The pixels.
    pub pixels: Vec<u8>,
    /// Images.
    pub count: usize,
    /// Height.
    pub height: usize,
    /// Width.
    pub width: usize,
}

/// A set of same-sized RGB images read in batches, in order.
pub struct ImageStream {
    source: PathBuf,
    total: usize,
    height: usize,
    width: usize,
    batches: Receiver<Result<ImageBatch>>,
    reader: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ImageStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageStream")
            .field("source", &self.source)
            .field("total", &self.total)
            .field("height", &self.height)
            .field("width", &self.width)
            .finish()
    }
}

fn check_batch(batch: usize) -> Result<()> {
    if batch == 0 {
        return Err(EvalError::Invalid {
            what: "batch size",
            reason: "must be positive".into(),
        });
    }
    Ok(())
}

impl ImageStream {
    /// The images of `path`: a `.npz` (its `arr_0`) or a folder of `.png` files.
    pub fn open(path: impl AsRef<Path>, batch: usize) -> Result<Self> {
        let path = path.as_ref();
        if path.is_dir() {
            Self::png_folder(path, batch)
        } else {
            Self::npz(path, IMAGES_ARRAY, batch)
        }
    }

    /// Array `array` of the `.npz` at `path`: uint8 `[N, H, W, 3]`.
    pub fn npz(path: impl AsRef<Path>, array: &str, batch: usize) -> Result<Self> {
        check_batch(batch)?;
        let path = path.as_ref().to_path_buf();
        let mut npz = NpzFile::open(&path)?;
        let header = npz.header(array)?;
        let [total, height, width, 3] = header.shape[..] else {
            return Err(file_error(
                &path,
                format!(
                    "array '{array}' has shape {:?}, expected [N, height, width, 3]",
                    header.shape
                ),
            ));
        };
        if header.dtype != ElementType::U8 || total == 0 || height == 0 || width == 0 {
            return Err(file_error(
                &path,
                format!(
                    "array '{array}' must be non-empty uint8 images, found {:?} {:?}",
                    header.dtype, header.shape
                ),
            ));
        }
        let (tx, rx) = sync_channel(2);
        let (source, name) = (path.clone(), array.to_string());
        let reader = std::thread::spawn(move || {
            let run = || -> Result<()> {
                let mut npz = NpzFile::open(&source)?;
                let (_, mut data) = npz.array(&name)?;
                let image = height * width * 3;
                let mut done = 0;
                while done < total {
                    let count = batch.min(total - done);
                    let mut pixels = vec![0u8; count * image];
                    data.read_exact(&mut pixels).map_err(|e| {
                        file_error(
                            &source,
                            format!("array '{name}' ends after image {done} of {total}: {e}"),
                        )
                    })?;
                    done += count;
                    let batch = ImageBatch {
                        pixels,
                        count,
                        height,
                        width,
                    };
                    if tx.send(Ok(batch)).is_err() {
                        return Ok(()); // the consumer stopped
                    }
                }
                Ok(())
            };
            if let Err(e) = run() {
                let _ = tx.send(Err(e));
            }
        });
        Ok(Self {
            source: path,
            total,
            height,
            width,
            batches: rx,
            reader: Some(reader),
        })
    }

    /// The `.png` files of `dir` in file-name order (the official script writes
    /// `000000.png`, `000001.png`, …), decoded to RGB; all must have the first one's size.
    pub fn png_folder(dir: impl AsRef<Path>, batch: usize) -> Result<Self> {
        check_batch(batch)?;
        let dir = dir.as_ref().to_path_buf();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| file_error(&dir, e.to_string()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("png")))
            .collect();
        files.sort();
        let Some(first) = files.first() else {
            return Err(file_error(&dir, "the folder holds no .png file"));
        };
        let (width, height) =
            image::image_dimensions(first).map_err(|e| file_error(first, e.to_string()))?;
        let (width, height) = (width as usize, height as usize);
        let total = files.len();
        let (tx, rx) = sync_channel(2);
        let reader = std::thread::spawn(move || {
            for chunk in files.chunks(batch) {
                let decoded: Result<Vec<Vec<u8>>> = chunk
                    .par_iter()
                    .map(|file| {
                        let img = image::open(file)
                            .map_err(|e| file_error(file, e.to_string()))?
                            .into_rgb8();
                        if (img.width() as usize, img.height() as usize) != (width, height) {
                            return Err(file_error(
                                file,
                                format!(
                                    "{}×{} pixels, but the folder's first image is {width}×{height}",
                                    img.width(),
                                    img.height()
                                ),
                            ));
                        }
                        Ok(img.into_raw())
                    })
                    .collect();
                let message = decoded.map(|images| ImageBatch {
                    count: images.len(),
                    pixels: images.concat(),
                    height,
                    width,
                });
                let failed = message.is_err();
                if tx.send(message).is_err() || failed {
                    return;
                }
            }
        });
        Ok(Self {
            source: dir,
            total,
            height,
            width,
            batches: rx,
            reader: Some(reader),
        })
    }

    /// The file or folder read.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Images in the set.
    pub fn len(&self) -> usize {
        self.total
    }

    /// Whether the set is empty (never, once opened).
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Image height.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Image width.
    pub fn width(&self) -> usize {
        self.width
    }
}

impl Iterator for ImageStream {
    type Item = Result<ImageBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.batches.recv() {
            Ok(batch) => Some(batch),
            Err(_) => {
                // The reader is done; a panic there is an error here, never a silent end.
                let handle = self.reader.take()?;
                match handle.join() {
                    Ok(()) => None,
                    Err(_) => Some(Err(file_error(&self.source, "the image reader panicked"))),
                }
            }
        }
    }
}
