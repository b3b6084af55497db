//! Pillow's 8-bit separable resampling, re-implemented so that resized pixels match PIL's bit
//! for bit (`ImagingResample`: support scaled by the reduction factor, coefficients
//! normalised and quantised to 22 fractional bits, horizontal pass first, each pass rounded
//! and clipped to u8). The reference preprocesses ImageNet with PIL; see [`crate::crop`].

use image::RgbImage;

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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A colour ramp of `w × h` pixels.
    pub(crate) fn ramp(w: u32, h: u32) -> RgbImage {
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
}
