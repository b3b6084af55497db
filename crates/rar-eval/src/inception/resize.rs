//! The graph's own preprocessing, on the host: TensorFlow 1's bilinear resize to 299×299
//! and the scaling `(x − 128) / 128`.
//!
//! TensorFlow 1's `ResizeBilinear` (with `align_corners=False`, as in the 2015 graph) maps
//! output pixel `i` to source coordinate `i · (in / out)` — **no half-pixel offset**, unlike
//! `torch.nn.functional.interpolate`, PIL or burn's `interpolate` — clamps the upper
//! neighbour to the last row or column, and interpolates along x, then along y. The scale is
//! rounded to f32 and each step below is one f32 operation in the same order as
//! torch-fidelity's `interpolate_bilinear_2d_like_tensorflow1x` (its exact "slow" path), so
//! the result is bit-identical to it.

use rayon::prelude::*;

use crate::error::{EvalError, Result};

/// One axis of the resize: for each output index, the two source indices and the weight of
/// the second.
struct Axis {
    lo: Vec<usize>,
    hi: Vec<usize>,
    frac: Vec<f32>,
}

impl Axis {
    fn new(input: usize, output: usize) -> Self {
        let scale = (input as f64 / output as f64) as f32;
        let mut axis = Axis {
            lo: Vec::with_capacity(output),
            hi: Vec::with_capacity(output),
            frac: Vec::with_capacity(output),
        };
        for i in 0..output {
            let source = i as f32 * scale;
            let lo = (source as usize).min(input - 1);
            axis.lo.push(lo);
            axis.hi.push((lo + 1).min(input - 1));
            axis.frac.push(source - lo as f32);
        }
        axis
    }
}

/// Resizes `count` uint8 RGB images (`[count, height, width, 3]`, row-major) to
/// `side × side` as TensorFlow 1's `ResizeBilinear` does, returning `[count, 3, side, side]`
/// f32 in channel-first order, values still in `[0, 255]`. A zero size, or `pixels` not
/// holding `count · height · width · 3` values, is an error.
pub fn tf1_resize_bilinear(
    pixels: &[u8],
    count: usize,
    height: usize,
    width: usize,
    side: usize,
) -> Result<Vec<f32>> {
    if count == 0 || height == 0 || width == 0 || side == 0 {
        return Err(EvalError::Invalid {
            what: "images",
            reason: format!(
                "shape [{count}, {height}, {width}, 3] resized to {side}² has no pixels"
            ),
        });
    }
    if pixels.len() != count * height * width * 3 {
        return Err(EvalError::Ragged {
            what: "images",
            len: pixels.len(),
            width: height * width * 3,
        });
    }
    let (ys, xs) = (Axis::new(height, side), Axis::new(width, side));
    let plane = side * side;
    let mut out = vec![0.0f32; count * 3 * plane];
    out.par_chunks_mut(3 * plane)
        .zip(pixels.par_chunks(height * width * 3))
        .for_each(|(dst, src)| {
            let at = |y: usize, x: usize, c: usize| src[(y * width + x) * 3 + c] as f32;
            for c in 0..3 {
                let dst = &mut dst[c * plane..(c + 1) * plane];
                for (oy, row) in dst.chunks_mut(side).enumerate() {
                    let (y0, y1, dy) = (ys.lo[oy], ys.hi[oy], ys.frac[oy]);
                    for (ox, value) in row.iter_mut().enumerate() {
                        let (x0, x1, dx) = (xs.lo[ox], xs.hi[ox], xs.frac[ox]);
                        let (a, b) = (at(y0, x0, c), at(y0, x1, c));
                        let (p, q) = (at(y1, x0, c), at(y1, x1, c));
                        let top = a + (b - a) * dx;
                        let bottom = p + (q - p) * dx;
                        let v = top + (bottom - top) * dy;
                        *value = v;
                    }
                }
            }
        });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_size_is_the_identity() {
        let pixels: Vec<u8> = (0..2 * 4 * 4 * 3).map(|i| (i * 7 % 256) as u8).collect();
        let out = tf1_resize_bilinear(&pixels, 2, 4, 4, 4).unwrap();
        for n in 0..2 {
            for c in 0..3 {
                for y in 0..4 {
                    for x in 0..4 {
                        let p = pixels[((n * 4 + y) * 4 + x) * 3 + c] as f32;
                        assert_eq!(out[((n * 3 + c) * 4 + y) * 4 + x], p);
                    }
                }
            }
        }
    }

    #[test]
    fn upsampling_keeps_the_first_pixel_and_has_no_half_pixel_offset() {
        // A 2-pixel ramp 0 → 255 resized to 4: TF1 samples at 0, 0.5, 1, 1.5 (clamped).
        let pixels = [0u8, 0, 0, 255, 255, 255];
        let out = tf1_resize_bilinear(&pixels, 1, 1, 2, 4).unwrap();
        let row: Vec<f32> = out[..4].to_vec();
        assert_eq!(row, vec![0.0, 127.5, 255.0, 255.0]);
    }
}
