//! Tests of the attention tile kernels.

use super::*;

fn data(n: usize, s: f32) -> Vec<f32> {
    (0..n).map(|i| (i as f32 * s).sin()).collect()
}

/// Each tile kernel (portable, and AVX2 where the CPU has it) against its plain triple
/// loop: feature counts that leave a tail after the full vectors (d = 11), fit one
/// partial chunk (16), one whole chunk (32) and a chunk plus one vector (40); column
/// counts that end on each tile width (8, 16, 40, 48); an odd key count (21).
#[test]
fn tiles_match_plain_loops() {
    check::<false>();
    if crate::Isa::detect() >= crate::Isa::Avx2Fma {
        check::<true>();
    }
}

fn check<const FMA: bool>() {
    for (d, cols) in [11, 16, 32, 40]
        .into_iter()
        .flat_map(|d| [8, 16, 40, 48].map(|c| (d, c)))
    {
        // Rows of `a` and `b` further apart than `d` (a strided view of heads).
        let (stride, n, ld) = (48, 21, d + 5);
        let a = data(ROWS * ld, 0.31);
        let bt = data(d * stride, 0.77);
        let mut out = vec![0f32; ROWS * stride];
        rows_by_transposed::<FMA>(&a, ld, d, &bt, stride, cols, 0.5, &mut out);
        for r in 0..ROWS {
            for j in 0..cols {
                let want: f32 = (0..d).map(|t| a[r * ld + t] * bt[t * stride + j]).sum();
                assert!((out[r * stride + j] - 0.5 * want).abs() < 1e-5, "{FMA} {d}");
            }
        }
        let p = data(ROWS * stride, 0.13);
        let b = data(n * ld, 0.57);
        let mut o = vec![0f32; ROWS * d];
        rows_by_matrix::<FMA>(&p, stride, n, &b, ld, d, &mut o);
        for r in 0..ROWS {
            for t in 0..d {
                let want: f32 = (0..n).map(|j| p[r * stride + j] * b[j * ld + t]).sum();
                assert!((o[r * d + t] - want).abs() < 1e-5, "{FMA} {d}");
            }
        }
        let mut acc = data(n * d, 0.91);
        let before = acc.clone();
        transposed_rows_accumulate::<FMA>(&p, stride, n, &a, ld, d, &mut acc);
        for j in 0..n {
            for t in 0..d {
                let want: f32 = (0..ROWS).map(|r| p[r * stride + j] * a[r * ld + t]).sum();
                assert!(
                    (acc[j * d + t] - before[j * d + t] - want).abs() < 1e-5,
                    "{FMA} {d}"
                );
            }
        }
    }
}
