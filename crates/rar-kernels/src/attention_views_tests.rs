//! Tests of `attention_views`: the strided views against the pair-major kernels.

use super::*;
use crate::{AttentionDropout, causal_attention_backward, causal_attention_forward};

fn data(n: usize, salt: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let h = (i as u32 ^ salt.wrapping_mul(0x9E37)).wrapping_mul(2_654_435_761);
            ((h >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 2.0
        })
        .collect()
}

/// Pair-major `[B·H, rows, d]` values into `[B, rows, width]` rows at column
/// `column + h·d` (width ≥ H·d: the heads of a wider buffer, as a chunk of `[B, L, 3C]`).
fn heads_last(
    src: &[f32],
    b: usize,
    h: usize,
    rows: usize,
    d: usize,
    width: usize,
    column: usize,
) -> Vec<f32> {
    let mut dst = data(b * rows * width, 99);
    for p in 0..b * h {
        for i in 0..rows {
            let at = ((p / h) * rows + i) * width + column + (p % h) * d;
            dst[at..at + d].copy_from_slice(&src[(p * rows + i) * d..][..d]);
        }
    }
    dst
}

fn view(h: usize, rows: usize, d: usize, width: usize, column: usize) -> HeadView {
    HeadView {
        heads: h,
        batch_stride: rows * width,
        head_stride: d,
        row_stride: width,
        offset: column,
    }
}

/// The views give exactly the pair-major results (same arithmetic, same dropout mask),
/// for inputs inside wider rows and outputs in both layouts.
#[test]
fn views_match_the_pair_major_kernels() {
    let (b, h, lq, lk, d) = (2, 3, 5, 7, 4);
    let shape = CausalShape {
        pairs: b * h,
        queries: lq,
        keys: lk,
        head_dim: d,
    };
    for dropout in [None, Some(AttentionDropout { keep: 0.8, seed: 7 })] {
        let options = CausalOptions {
            scale: 0.5,
            dropout,
        };
        let (q, k, v) = (
            data(b * h * lq * d, 1),
            data(b * h * lk * d, 2),
            data(b * h * lk * d, 3),
        );
        let g = data(b * h * lq * d, 4);
        let (mut out, mut lse) = (vec![0.0; q.len()], vec![0.0; b * h * lq]);
        causal_attention_forward(&q, &k, &v, shape, options, &mut out, &mut lse).unwrap();
        let mut want = [vec![0.0; q.len()], vec![0.0; k.len()], vec![0.0; v.len()]];
        let [gq, gk, gv] = &mut want;
        causal_attention_backward(&q, &k, &v, &out, &lse, &g, shape, options, gq, gk, gv).unwrap();

        // q, k inside [B, L, 3C] rows (columns 0 and C), v on its own, as the model has them.
        let (c, w) = (h * d, 3 * h * d);
        let qs = (heads_last(&q, b, h, lq, d, w, 0), view(h, lq, d, w, 0));
        let ks = (heads_last(&k, b, h, lk, d, w, c), view(h, lk, d, w, c));
        let vs = (heads_last(&v, b, h, lk, d, c, 0), view(h, lk, d, c, 0));
        let gs = (heads_last(&g, b, h, lq, d, c, 0), view(h, lq, d, c, 0));
        for layout in [HeadLayout::PairMajor, HeadLayout::HeadsLast] {
            let to_layout = |x: &[f32], rows| match layout {
                HeadLayout::PairMajor => x.to_vec(),
                HeadLayout::HeadsLast => heads_last(x, b, h, rows, d, c, 0),
            };
            let (mut o2, mut lse2) = (vec![0.0; q.len()], vec![0.0; lse.len()]);
            causal_attention_forward_views(
                (&qs.0, qs.1),
                (&ks.0, ks.1),
                (&vs.0, vs.1),
                shape,
                options,
                (&mut o2, layout),
                &mut lse2,
            )
            .unwrap();
            assert_eq!(o2, to_layout(&out, lq), "{layout:?} {dropout:?}: out");
            assert_eq!(lse2, lse);
            let o_view = layout.view(h, lq, d);
            let mut got = [vec![0.0; q.len()], vec![0.0; k.len()], vec![0.0; v.len()]];
            let [gq2, gk2, gv2] = &mut got;
            causal_attention_backward_views(
                (&qs.0, qs.1),
                (&ks.0, ks.1),
                (&vs.0, vs.1),
                (&o2, o_view),
                &lse2,
                (&gs.0, gs.1),
                shape,
                options,
                layout,
                [gq2, gk2, gv2],
            )
            .unwrap();
            assert_eq!(got[0], to_layout(&want[0], lq), "{layout:?}: grad_q");
            assert_eq!(got[1], to_layout(&want[1], lk), "{layout:?}: grad_k");
            assert_eq!(got[2], to_layout(&want[2], lk), "{layout:?}: grad_v");
        }
    }
}

#[test]
fn views_past_the_buffer_are_an_error() {
    let shape = CausalShape {
        pairs: 2,
        queries: 3,
        keys: 3,
        head_dim: 4,
    };
    let buf = vec![0.0; 2 * 3 * 4];
    let ok = HeadLayout::HeadsLast.view(2, 3, 4);
    let late = HeadView { offset: 1, ..ok };
    let (mut out, mut lse) = (vec![0.0; 24], vec![0.0; 6]);
    let err = causal_attention_forward_views(
        (&buf, ok),
        (&buf, late),
        (&buf, ok),
        shape,
        CausalOptions::new(1.0),
        (&mut out, HeadLayout::HeadsLast),
        &mut lse,
    )
    .unwrap_err();
    assert!(err.to_string().contains("`k`"), "{err}");
    let three_heads = HeadView { heads: 3, ..ok };
    let err = causal_attention_forward_views(
        (&buf, three_heads),
        (&buf, ok),
        (&buf, ok),
        shape,
        CausalOptions::new(1.0),
        (&mut out, HeadLayout::HeadsLast),
        &mut lse,
    )
    .unwrap_err();
    assert!(err.to_string().contains("whole batch rows"), "{err}");
}
