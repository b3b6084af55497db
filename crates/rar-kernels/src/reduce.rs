//! Sums: of a slice in eight lanes, and column sums of row-major rows (a bias gradient:
//! `Σ_rows grad_out`).

use rayon::prelude::*;

use crate::error::{KernelError, Result};
use crate::isa::with_simd;

/// Values per rayon task (tiny in tests, so that they cover many blocks).
const TASK_VALUES: usize = if cfg!(test) { 64 } else { 1 << 15 };

/// The eight lane sums of `v`'s whole chunks of eight (so that the loop vectorises) and the
/// sum of the rest.
#[inline(always)]
fn lanes_and_tail(v: &[f32]) -> ([f32; 8], f32) {
    let mut acc = [0f32; 8];
    let mut chunks = v.chunks_exact(8);
    for c in &mut chunks {
        for i in 0..8 {
            acc[i] += c[i];
        }
    }
    (acc, chunks.remainder().iter().sum::<f32>())
}

/// `Σ v` with eight partial sums, so that the loop vectorises.
#[inline(always)]
pub(crate) fn sum_lanes(v: &[f32]) -> f32 {
    let (acc, tail) = lanes_and_tail(v);
    acc.iter().sum::<f32>() + tail
}

/// `Σ acc` as a pairwise tree (three dependent additions instead of seven): the rows of the
/// attention's query/key norms are 32 values, so two such folds per row were most of its
/// latency when summed one after another.
#[inline(always)]
pub(crate) fn sum_pairwise(acc: [f32; 8]) -> f32 {
    ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
}

/// `Σ v` with eight partial sums folded pairwise ([`sum_pairwise`]).
#[inline(always)]
pub(crate) fn sum_lanes_pairwise(v: &[f32]) -> f32 {
    let (acc, tail) = lanes_and_tail(v);
    sum_pairwise(acc) + tail
}

/// Mean and `1/√(var + eps)` (biased variance) of one row: two passes over it (the row is in
/// L1 by the second), each in eight lanes folded pairwise.
#[inline(always)]
pub(crate) fn mean_and_inverse_deviation(row: &[f32], eps: f32) -> (f32, f32) {
    let n = row.len() as f32;
    let mean = sum_lanes_pairwise(row) / n;
    let mut acc = [0f32; 8];
    let mut chunks = row.chunks_exact(8);
    for c in &mut chunks {
        // A fixed-size chunk: the compiler keeps the eight lanes in one vector.
        let c: &[f32; 8] = c.try_into().expect("chunks of 8");
        for i in 0..8 {
            let d = c[i] - mean;
            acc[i] += d * d;
        }
    }
    let tail: f32 = chunks
        .remainder()
        .iter()
        .map(|v| (v - mean) * (v - mean))
        .sum();
    let var = (sum_pairwise(acc) + tail) / n;
    (mean, 1.0 / (var + eps).sqrt())
}

/// `out[c] = Σ_r values[r · width + c]`. Row blocks are summed on rayon's threads and then in
/// block order, so the result does not depend on the number of threads.
pub fn column_sums(values: &[f32], width: usize, out: &mut [f32]) -> Result<()> {
    if width == 0 || !values.len().is_multiple_of(width) || out.len() != width {
        return Err(KernelError::Shape(format!(
            "column sums: {} values in rows of {width} into {} sums",
            values.len(),
            out.len()
        )));
    }
    let block = (TASK_VALUES / width).max(1) * width;
    let partials: Vec<Vec<f32>> = values
        .par_chunks(block)
        .map(|rows| {
            let mut acc = vec![0f32; width];
            with_simd(
                #[inline(always)]
                || {
                    for row in rows.chunks_exact(width) {
                        for (a, &v) in acc.iter_mut().zip(row) {
                            *a += v;
                        }
                    }
                },
            );
            acc
        })
        .collect();
    out.fill(0.0);
    for p in &partials {
        for (o, v) in out.iter_mut().zip(p) {
            *o += v;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_every_column_over_all_blocks() {
        let (rows, width) = (45, 7);
        let values: Vec<f32> = (0..rows * width).map(|i| (i as f32 * 0.3).sin()).collect();
        let mut out = vec![f32::NAN; width];
        column_sums(&values, width, &mut out).unwrap();
        for (c, &got) in out.iter().enumerate() {
            let want: f64 = (0..rows).map(|r| values[r * width + c] as f64).sum();
            assert!((got as f64 - want).abs() < 1e-5, "column {c}");
        }
        assert!(column_sums(&values[1..], width, &mut out).is_err());
        assert!(column_sums(&values, width, &mut out[1..]).is_err());
    }
}
