//! Tiling images into one PNG (used by the sampler for previews).

use std::path::Path;

use image::RgbImage;

use crate::error::{Result, VqError};

/// Tiles equally sized images row-major into a `rows × cols` grid with no spacing; cells
/// past the last image stay black.
pub fn make_grid(images: &[RgbImage], rows: usize, cols: usize) -> Result<RgbImage> {
    let first = images
        .first()
        .ok_or_else(|| VqError::input("images", "no images to tile"))?;
    if rows == 0 || cols == 0 {
        return Err(VqError::input(
            "rows/cols",
            format!("grid must be at least 1×1, got {rows}×{cols}"),
        ));
    }
    if images.len() > rows * cols {
        return Err(VqError::input(
            "images",
            format!("{} images do not fit a {rows}×{cols} grid", images.len()),
        ));
    }
    let (w, h) = first.dimensions();
    let too_big = || VqError::input("rows/cols", "grid is too large");
    let gw = u32::try_from(cols)
        .ok()
        .and_then(|c| c.checked_mul(w))
        .ok_or_else(too_big)?;
    let gh = u32::try_from(rows)
        .ok()
        .and_then(|r| r.checked_mul(h))
        .ok_or_else(too_big)?;
    let mut grid = RgbImage::new(gw, gh);
    for (i, img) in images.iter().enumerate() {
        if img.dimensions() != (w, h) {
            return Err(VqError::input(
                "images",
                format!(
                    "image {i} is {:?}, image 0 is {:?}: all must have one size",
                    img.dimensions(),
                    (w, h)
                ),
            ));
        }
        let (r, c) = ((i / cols) as u32, (i % cols) as u32);
        image::imageops::replace(&mut grid, img, i64::from(c * w), i64::from(r * h));
    }
    Ok(grid)
}

/// Writes images as one PNG grid (`rows × cols`, row-major) to `path`.
pub fn write_png_grid(
    images: &[RgbImage],
    rows: usize,
    cols: usize,
    path: impl AsRef<Path>,
) -> Result<()> {
    let path = path.as_ref();
    let grid = make_grid(images, rows, cols)?;
    grid.save_with_format(path, image::ImageFormat::Png)
        .map_err(|e| VqError::ImageWrite {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

/// Like [`write_png_grid`] for a `[B, H, W, 3]` uint8 buffer (what
/// [`crate::convert::tensor_to_u8_hwc`] returns).
pub fn write_png_grid_u8(
    hwc: &[u8],
    shape: [usize; 4],
    rows: usize,
    cols: usize,
    path: impl AsRef<Path>,
) -> Result<()> {
    let [b, h, w, c] = shape;
    if c != 3 || hwc.len() != b * h * w * 3 {
        return Err(VqError::input(
            "hwc",
            format!(
                "buffer of {} bytes does not match shape {shape:?} with 3 channels",
                hwc.len()
            ),
        ));
    }
    let per = h * w * 3;
    let images = (0..b)
        .map(|i| {
            RgbImage::from_raw(w as u32, h as u32, hwc[i * per..(i + 1) * per].to_vec())
                .ok_or_else(|| VqError::input("hwc", "image buffer size mismatch"))
        })
        .collect::<Result<Vec<_>>>()?;
    write_png_grid(&images, rows, cols, path)
}
