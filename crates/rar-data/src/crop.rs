//! Image loading and the reference's preprocessing (the official `scripts/pretokenization.py`).
//!
//! * Loading: JPEG/PNG through the `image` crate, converted to 8-bit RGB (alpha dropped,
//!   grey replicated — PIL's `convert("RGB")`). The JPEG decoder is not libjpeg, so decoded
//!   pixels can differ from PIL's by a unit or so in places; everything after decoding
//!   follows the reference exactly.
//! * [`adm_center_crop`]: guided-diffusion's `center_crop_arr` as used by
//!   `scripts/pretokenization.py`: while the shorter side is ≥ 2S halve both sides
//!   (integer division) with PIL's BOX filter, then resize so the shorter side is S with
//!   PIL's BICUBIC filter (new size `round(side·S/shorter)`, round-half-even), then crop
//!   S×S at `((h − S) // 2, (w − S) // 2)`.
//! * resizing with [`crate::resize::pil_resize`], Pillow's resampling bit for bit.
//! * [`ten_crop`]: torchvision `TenCrop(256)` on the 281×281 ADM crop: corners and centre
//!   (centre offset `round((281 − 256)/2)` = 12 under round-half-even), then the same five
//!   crops of the horizontally flipped image.
//! * [`CropMode::CenterFlip`]: the ablation mode: the ADM centre crop to 256 and its
//!   horizontal flip.

use std::path::Path;

use image::RgbImage;

use crate::error::{DataError, Result};
use crate::resize::{ResampleFilter, pil_resize};

/// The most pixels the ADM crop resizes an image to before cropping (64 Mpx, 192 MB of RGB;
/// ImageNet's most elongated images need a few hundred thousand).
pub const MAX_RESIZED_PIXELS: f64 = 64.0 * 1024.0 * 1024.0;

/// Decodes an image from memory (format guessed from the bytes) to 8-bit RGB.
/// `path` only names the source in errors.
pub fn decode_rgb(bytes: &[u8], path: &Path) -> Result<RgbImage> {
    let err = |message: String| DataError::ImageDecode {
        path: path.to_path_buf(),
        message,
    };
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| err(e.to_string()))?;
    let img = reader.decode().map_err(|e| err(e.to_string()))?.to_rgb8();
    if img.width() == 0 || img.height() == 0 {
        return Err(err("image has no pixels".into()));
    }
    Ok(img)
}

/// Reads and decodes an image file (JPEG, PNG) to 8-bit RGB.
pub fn load_rgb(path: impl AsRef<Path>) -> Result<RgbImage> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    decode_rgb(&bytes, path)
}

/// ADM centre crop to `size × size` (guided-diffusion `center_crop_arr`, see the module
/// docs for the exact steps and filters).
pub fn adm_center_crop(img: &RgbImage, size: u32) -> Result<RgbImage> {
    if size == 0 || img.width() == 0 || img.height() == 0 {
        return Err(DataError::input(
            "image",
            format!(
                "cannot crop a {}×{} image to {size}×{size}",
                img.width(),
                img.height()
            ),
        ));
    }
    let mut img = img.clone();
    while img.width().min(img.height()) >= 2 * size {
        let (w, h) = (img.width() / 2, img.height() / 2);
        img = pil_resize(&img, w, h, ResampleFilter::Box);
    }
    let scale = f64::from(size) / f64::from(img.width().min(img.height()));
    let new_w = (f64::from(img.width()) * scale).round_ties_even();
    let new_h = (f64::from(img.height()) * scale).round_ties_even();
    // An extremely elongated image (a 60000×1 strip) would be upscaled to billions of pixels
    // before the crop: refuse it instead of allocating them.
    if new_w * new_h > MAX_RESIZED_PIXELS {
        return Err(DataError::input(
            "image",
            format!(
                "a {}×{} image would be resized to {new_w}×{new_h} before the {size}×{size} crop \
                 (more than {MAX_RESIZED_PIXELS} pixels)",
                img.width(),
                img.height()
            ),
        ));
    }
    let (new_w, new_h) = (new_w as u32, new_h as u32);
    if (new_w, new_h) != img.dimensions() {
        img = pil_resize(&img, new_w.max(1), new_h.max(1), ResampleFilter::Bicubic);
    }
    if img.width() < size || img.height() < size {
        return Err(DataError::input(
            "image",
            format!(
                "resized image {}×{} is smaller than the crop {size}",
                img.width(),
                img.height()
            ),
        ));
    }
    let top = (img.height() - size) / 2;
    let left = (img.width() - size) / 2;
    Ok(image::imageops::crop_imm(&img, left, top, size, size).to_image())
}

/// torchvision `FiveCrop(size)`: top-left, top-right, bottom-left, bottom-right, centre.
pub fn five_crop(img: &RgbImage, size: u32) -> Result<[RgbImage; 5]> {
    let (w, h) = img.dimensions();
    if size == 0 || w < size || h < size {
        return Err(DataError::input(
            "image",
            format!("cannot take {size}×{size} crops of a {w}×{h} image"),
        ));
    }
    // torchvision's center_crop: int(round((h - size) / 2.0)), Python rounds half to even.
    let top = (f64::from(h - size) / 2.0).round_ties_even() as u32;
    let left = (f64::from(w - size) / 2.0).round_ties_even() as u32;
    let crop = |x: u32, y: u32| image::imageops::crop_imm(img, x, y, size, size).to_image();
    Ok([
        crop(0, 0),
        crop(w - size, 0),
        crop(0, h - size),
        crop(w - size, h - size),
        crop(left, top),
    ])
}

/// torchvision `TenCrop(size)` (horizontal flip): the five crops of the image, then the five
/// crops of its mirror image.
pub fn ten_crop(img: &RgbImage, size: u32) -> Result<Vec<RgbImage>> {
    let flipped = image::imageops::flip_horizontal(img);
    let mut out = Vec::with_capacity(10);
    out.extend(five_crop(img, size)?);
    out.extend(five_crop(&flipped, size)?);
    Ok(out)
}

/// Which crops of each image are tokenized (the official `scripts/pretokenization.py`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CropMode {
    /// The released-model setting (`--ten_crop`): ADM centre crop to ⌊1.1·size⌋, then
    /// [`ten_crop`] — 10 records per image.
    TenCrop,
    /// The ablation setting: ADM centre crop to `size` and its horizontal flip — 2 records
    /// per image.
    CenterFlip,
}

impl CropMode {
    /// Records (crops) produced per image.
    pub fn crops_per_image(self) -> usize {
        match self {
            Self::TenCrop => 10,
            Self::CenterFlip => 2,
        }
    }

    /// Stable name (`ten-crop` / `center-flip`) used in the shard index and the CLI.
    pub fn name(self) -> &'static str {
        match self {
            Self::TenCrop => "ten-crop",
            Self::CenterFlip => "center-flip",
        }
    }

    /// Parses [`CropMode::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "ten-crop" => Some(Self::TenCrop),
            "center-flip" => Some(Self::CenterFlip),
            _ => None,
        }
    }

    /// The crops of `img` at output side `size`, in record order.
    pub fn crops(self, img: &RgbImage, size: u32) -> Result<Vec<RgbImage>> {
        match self {
            Self::TenCrop => {
                // int(256 * 1.1) = 281, computed in integers to avoid float surprises.
                let big = size + size / 10;
                ten_crop(&adm_center_crop(img, big)?, size)
            }
            Self::CenterFlip => {
                let c = adm_center_crop(img, size)?;
                let f = image::imageops::flip_horizontal(&c);
                Ok(vec![c, f])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resize::tests::ramp;

    #[test]
    fn extremely_elongated_images_are_refused_before_resizing() {
        let strip = RgbImage::new(60_000, 1);
        let err = adm_center_crop(&strip, 281).unwrap_err().to_string();
        assert!(err.contains("60000×1") && err.contains("pixels"), "{err}");
    }

    #[test]
    fn constant_images_stay_constant() {
        let img = RgbImage::from_pixel(517, 389, image::Rgb([10, 128, 250]));
        let out = adm_center_crop(&img, 281).unwrap();
        assert_eq!(out.dimensions(), (281, 281));
        assert!(out.pixels().all(|p| p.0 == [10, 128, 250]));
    }

    #[test]
    fn adm_crop_sizes_and_offsets() {
        // 1200×700: shorter 700 ≥ 562 → halve to 600×350; scale 281/350 → 482×281.
        let img = ramp(1200, 700);
        let out = adm_center_crop(&img, 281).unwrap();
        assert_eq!(out.dimensions(), (281, 281));
        // A square input of the right size is only cropped (no resize at all).
        let sq = ramp(281, 300);
        let out = adm_center_crop(&sq, 281).unwrap();
        assert_eq!(
            out,
            image::imageops::crop_imm(&sq, 0, 9, 281, 281).to_image()
        );
    }

    #[test]
    fn ten_crop_positions_and_order() {
        let img = ramp(281, 281);
        let crops = ten_crop(&img, 256).unwrap();
        assert_eq!(crops.len(), 10);
        let at = |x, y| image::imageops::crop_imm(&img, x, y, 256, 256).to_image();
        assert_eq!(crops[0], at(0, 0));
        assert_eq!(crops[1], at(25, 0));
        assert_eq!(crops[2], at(0, 25));
        assert_eq!(crops[3], at(25, 25));
        assert_eq!(crops[4], at(12, 12));
        let flipped = image::imageops::flip_horizontal(&img);
        assert_eq!(
            crops[5],
            image::imageops::crop_imm(&flipped, 0, 0, 256, 256).to_image()
        );
        // The flipped top-left crop is the mirror of the original top-right crop.
        assert_eq!(crops[5], image::imageops::flip_horizontal(&crops[1]));
    }

    #[test]
    fn corrupt_bytes_are_an_error() {
        let err = decode_rgb(b"\xff\xd8\xff\xe0 not really a jpeg", Path::new("x.JPEG"));
        assert!(matches!(err, Err(DataError::ImageDecode { .. })));
    }
}
