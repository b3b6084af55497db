//! Image loading and the reference's preprocessing (spec §8.1).
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
//! * [`pil_resize`]: a re-implementation of Pillow's 8-bit separable resampling
//!   (`ImagingResample`: support scaled by the reduction factor, coefficients normalised and
//!   quantised to 22 fractional bits, horizontal pass first, each pass rounded and clipped to
//!   u8) so the resized pixels match PIL's bit for bit.
//! * [`ten_crop`]: torchvision `TenCrop(256)` on the 281×281 ADM crop: corners and centre
//!   (centre offset `round((281 − 256)/2)` = 12 under round-half-even), then the same five
//!   crops of the horizontally flipped image.
//! * [`CropMode::CenterFlip`]: the ablation mode: the ADM centre crop to 256 and its
//!   horizontal flip.

use std::path::Path;

use image::RgbImage;

use crate::error::{Result, VqError};

/// Resampling filters of [`pil_resize`] (Pillow's `Image.BOX` and `Image.BICUBIC`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResampleFilter {
    /// Box filter, support 0.5 (area averaging when reducing).
    Box,
    /// Keys cubic with a = −0.5, support 2.
    Bicubic,
}

impl ResampleFilter {
    fn support(self) -> f64 {
        match self {
            Self::Box => 0.5,
            Self::Bicubic => 2.0,
        }
    }

    fn eval(self, x: f64) -> f64 {
        match self {
            Self::Box => {
                if x > -0.5 && x <= 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            Self::Bicubic => {
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
        }
    }
}

/// Fractional bits of Pillow's fixed-point coefficients (`32 − 8 − 2`).
const PRECISION_BITS: u32 = 22;

/// Per-output-pixel source window and fixed-point weights of one resampling pass.
struct Coefficients {
    /// `(first source index, number of taps)` per output index.
    bounds: Vec<(usize, usize)>,
    /// Row-major `[out_size, ksize]` fixed-point weights.
    weights: Vec<i32>,
    ksize: usize,
}

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for the full-image box.
fn coefficients(in_size: usize, out_size: usize, filter: ResampleFilter) -> Coefficients {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = vec![0i32; out_size * ksize];
    let mut taps = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C casts truncate toward zero, as `as i64` does.
        let xmin = ((center - support + 0.5) as i64).max(0);
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) - xmin;
        let n = xmax.max(0) as usize;
        let mut total = 0.0;
        for (x, tap) in taps.iter_mut().enumerate().take(n) {
            let w = filter.eval(((x as i64 + xmin) as f64 - center + 0.5) * ss);
            *tap = w;
            total += w;
        }
        let row = &mut weights[xx * ksize..(xx + 1) * ksize];
        for x in 0..n {
            let k = if total != 0.0 {
                taps[x] / total
            } else {
                taps[x]
            };
            let scaled = k * f64::from(1u32 << PRECISION_BITS);
            row[x] = if k < 0.0 {
                (-0.5 + scaled) as i32
            } else {
                (0.5 + scaled) as i32
            };
        }
        bounds.push((xmin as usize, n));
    }
    Coefficients {
        bounds,
        weights,
        ksize,
    }
}

#[inline]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

fn resample_horizontal(src: &RgbImage, out_w: usize, filter: ResampleFilter) -> RgbImage {
    let (w, h) = (src.width() as usize, src.height() as usize);
    let co = coefficients(w, out_w, filter);
    let raw = src.as_raw();
    let mut out = vec![0u8; out_w * h * 3];
    for y in 0..h {
        let row = &raw[y * w * 3..(y + 1) * w * 3];
        for (xx, &(xmin, n)) in co.bounds.iter().enumerate() {
            let k = &co.weights[xx * co.ksize..xx * co.ksize + n];
            let mut acc = [1i32 << (PRECISION_BITS - 1); 3];
            for (x, &kx) in k.iter().enumerate() {
                let px = &row[(xmin + x) * 3..(xmin + x) * 3 + 3];
                for c in 0..3 {
                    acc[c] += i32::from(px[c]) * kx;
                }
            }
            let o = (y * out_w + xx) * 3;
            for c in 0..3 {
                out[o + c] = clip8(acc[c]);
            }
        }
    }
    RgbImage::from_raw(out_w as u32, h as u32, out).expect("buffer sized for the image")
}

fn resample_vertical(src: &RgbImage, out_h: usize, filter: ResampleFilter) -> RgbImage {
    let (w, h) = (src.width() as usize, src.height() as usize);
    let co = coefficients(h, out_h, filter);
    let raw = src.as_raw();
    let mut out = vec![0u8; w * out_h * 3];
    let mut acc = vec![0i32; w * 3];
    for (yy, &(ymin, n)) in co.bounds.iter().enumerate() {
        let k = &co.weights[yy * co.ksize..yy * co.ksize + n];
        acc.fill(1i32 << (PRECISION_BITS - 1));
        for (y, &ky) in k.iter().enumerate() {
            let row = &raw[(ymin + y) * w * 3..(ymin + y + 1) * w * 3];
            for (a, &p) in acc.iter_mut().zip(row) {
                *a += i32::from(p) * ky;
            }
        }
        for (o, &a) in out[yy * w * 3..(yy + 1) * w * 3].iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
    RgbImage::from_raw(w as u32, out_h as u32, out).expect("buffer sized for the image")
}

/// Resizes like Pillow's `Image.resize((out_w, out_h), resample=filter)` on an RGB image
/// (8-bit fixed-point, horizontal pass first). Sizes must be positive.
pub fn pil_resize(src: &RgbImage, out_w: u32, out_h: u32, filter: ResampleFilter) -> RgbImage {
    let mut img = src.clone();
    if out_w != img.width() {
        img = resample_horizontal(&img, out_w as usize, filter);
    }
    if out_h != img.height() {
        img = resample_vertical(&img, out_h as usize, filter);
    }
    img
}

/// Decodes an image from memory (format guessed from the bytes) to 8-bit RGB.
/// `path` only names the source in errors.
pub fn decode_rgb(bytes: &[u8], path: &Path) -> Result<RgbImage> {
    let err = |message: String| VqError::ImageDecode {
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
    let bytes = std::fs::read(path).map_err(|e| VqError::io(path, e))?;
    decode_rgb(&bytes, path)
}

/// ADM centre crop to `size × size` (guided-diffusion `center_crop_arr`, see the module
/// docs for the exact steps and filters).
pub fn adm_center_crop(img: &RgbImage, size: u32) -> Result<RgbImage> {
    if size == 0 || img.width() == 0 || img.height() == 0 {
        return Err(VqError::input(
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
    let new_w = (f64::from(img.width()) * scale).round_ties_even() as u32;
    let new_h = (f64::from(img.height()) * scale).round_ties_even() as u32;
    if (new_w, new_h) != img.dimensions() {
        img = pil_resize(&img, new_w.max(1), new_h.max(1), ResampleFilter::Bicubic);
    }
    if img.width() < size || img.height() < size {
        return Err(VqError::input(
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
        return Err(VqError::input(
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

/// Which crops of each image are tokenized (spec §8.1).
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

    fn ramp(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([
                (x * 7 % 256) as u8,
                (y * 5 % 256) as u8,
                ((x + y) % 256) as u8,
            ])
        })
    }

    #[test]
    fn box_halving_rounds_each_pass() {
        // Reducing by exactly 2 gives weights 1/2 per tap in each pass; Pillow rounds
        // (+0.5, truncate) after the horizontal pass and again after the vertical one.
        let img = ramp(8, 6);
        let out = pil_resize(&img, 4, 3, ResampleFilter::Box);
        let p = |x, y, c| u32::from(img.get_pixel(x, y)[c]);
        for y in 0..3 {
            for x in 0..4 {
                for c in 0..3 {
                    let top = (p(2 * x, 2 * y, c) + p(2 * x + 1, 2 * y, c)).div_ceil(2);
                    let bottom = (p(2 * x, 2 * y + 1, c) + p(2 * x + 1, 2 * y + 1, c)).div_ceil(2);
                    assert_eq!(
                        u32::from(out.get_pixel(x, y)[c]),
                        (top + bottom).div_ceil(2)
                    );
                }
            }
        }
    }

    #[test]
    fn bicubic_coefficients_sum_to_one() {
        for (i, o) in [(500, 281), (281, 500), (100, 100), (3, 281)] {
            let co = coefficients(i, o, ResampleFilter::Bicubic);
            for (xx, &(_, n)) in co.bounds.iter().enumerate() {
                let s: i64 = co.weights[xx * co.ksize..xx * co.ksize + n]
                    .iter()
                    .map(|&k| i64::from(k))
                    .sum();
                assert!(
                    (s - (1 << PRECISION_BITS)).abs() <= n as i64,
                    "{i}->{o}: {s}"
                );
            }
        }
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
        assert!(matches!(err, Err(VqError::ImageDecode { .. })));
    }
}
