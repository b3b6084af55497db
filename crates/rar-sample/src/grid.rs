//! Tiling images into one PNG, written atomically.

use std::path::Path;

use image::RgbImage;

use crate::error::{Result, SampleError};

/// Tiles equally sized images row-major into a `rows × cols` grid with no spacing; cells
/// past the last image stay black.
pub fn make_grid(images: &[RgbImage], rows: usize, cols: usize) -> Result<RgbImage> {
    let first = images
        .first()
        .ok_or_else(|| SampleError::input("images", "no images to tile"))?;
    if rows == 0 || cols == 0 {
        return Err(SampleError::input(
            "rows/cols",
            format!("grid must be at least 1×1, got {rows}×{cols}"),
        ));
    }
    if images.len() > rows * cols {
        return Err(SampleError::input(
            "images",
            format!("{} images do not fit a {rows}×{cols} grid", images.len()),
        ));
    }
    let (w, h) = first.dimensions();
    let too_big = || SampleError::input("rows/cols", "grid is too large");
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
            return Err(SampleError::input(
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

/// Writes images as one PNG grid (`rows × cols`, row-major) to `path`, atomically: a failure
/// leaves an existing file intact.
pub fn write_png_grid(
    images: &[RgbImage],
    rows: usize,
    cols: usize,
    path: impl AsRef<Path>,
) -> Result<()> {
    let path = path.as_ref();
    let grid = make_grid(images, rows, cols)?;
    let mut png = Vec::new();
    grid.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| SampleError::ImageWrite {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    rar_data::write_atomic(path, &png).map_err(|e| SampleError::ImageWrite {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Like [`write_png_grid`] for a `[B, H, W, 3]` uint8 buffer (what
/// [`rar_vq::tensor_to_u8_hwc`] returns).
pub fn write_png_grid_u8(
    hwc: &[u8],
    shape: [usize; 4],
    rows: usize,
    cols: usize,
    path: impl AsRef<Path>,
) -> Result<()> {
    let [b, h, w, c] = shape;
    if c != 3 || hwc.len() != b * h * w * 3 {
        return Err(SampleError::input(
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
                .ok_or_else(|| SampleError::input("hwc", "image buffer size mismatch"))
        })
        .collect::<Result<Vec<_>>>()?;
    write_png_grid(&images, rows, cols, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    #[test]
    fn png_grid_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        let imgs: Vec<RgbImage> = (0..5u8)
            .map(|i| RgbImage::from_fn(3, 2, |x, y| Rgb([i * 40, x as u8, y as u8])))
            .collect();
        let path = tmp.path().join("grid.png");
        write_png_grid(&imgs, 2, 3, &path).unwrap();
        let back = image::open(&path).unwrap().to_rgb8();
        assert_eq!(back.dimensions(), (9, 4));
        for (i, img) in imgs.iter().enumerate() {
            let (r, c) = ((i / 3) as u32, (i % 3) as u32);
            for y in 0..2 {
                for x in 0..3 {
                    assert_eq!(back.get_pixel(c * 3 + x, r * 2 + y), img.get_pixel(x, y));
                }
            }
        }
        // The empty sixth cell is black.
        assert_eq!(back.get_pixel(8, 3), &Rgb([0, 0, 0]));
        assert!(make_grid(&imgs, 2, 2).is_err());
        assert!(make_grid(&[], 1, 1).is_err());
        let mixed = vec![imgs[0].clone(), RgbImage::new(2, 2)];
        assert!(make_grid(&mixed, 1, 2).is_err());
        assert!(matches!(
            write_png_grid(&imgs, 2, 3, tmp.path().join("no/such/dir/g.png")),
            Err(SampleError::ImageWrite { .. })
        ));
        // A failed write leaves the previous file intact.
        let before = std::fs::read(&path).unwrap();
        assert!(write_png_grid(&[RgbImage::new(0, 0)], 1, 1, &path).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }
}
