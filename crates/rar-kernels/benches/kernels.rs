//! Micro-benchmarks of the decode kernels at RAR-B width (C 768, I 3072) and 16 rows (a guided
//! batch of 8 images): the packed product in f32 and bf16 against a plain row-major loop,
//! LayerNorm, GELU and one-query attention; and the training attention (forward, backward) at
//! the benchmark model's size (batch 8, 8 heads, 258 positions, 32 features per head) with the
//! training step's fused GELU, LayerNorm and cross-entropy.
//!
//! `cargo bench -p rar-kernels` (add `-- --quick` for a short run).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rar_kernels::{
    CachedHead, CausalOptions, CausalShape, Isa, NormAffine, NormGrads, NormModulation,
    PackedLinear, PackedPrecision, TokenShape, attend_one, causal_attention_backward,
    causal_attention_forward, cross_entropy_backward, cross_entropy_forward, gelu_backward,
    gelu_forward, gelu_in_place, layer_norm_backward, layer_norm_forward, layer_norm_rows,
};

fn values(len: usize) -> Vec<f32> {
    (0..len).map(|i| ((i as f32) * 0.618).sin()).collect()
}

fn products(c: &mut Criterion) {
    let rows = 16;
    let mut group = c.benchmark_group("packed_linear");
    for &(k, n, name) in &[
        (768, 2304, "qkv 768x2304"),
        (768, 4608, "adaLN 768x4608"),
        (3072, 768, "fc2 3072x768"),
    ] {
        let (x, w) = (values(rows * k), values(k * n));
        let mut out = vec![0f32; rows * n];
        for precision in [PackedPrecision::F32, PackedPrecision::Bf16] {
            let packed = PackedLinear::new(&w, k, n, None, precision).unwrap();
            group.throughput(Throughput::Bytes(packed.bytes() as u64));
            let id = BenchmarkId::new(format!("{precision:?} {}", Isa::active().name()), name);
            group.bench_function(id, |b| {
                b.iter(|| packed.forward(&x, rows, &mut out).unwrap())
            });
        }
        // The unpacked row-major loop a naive implementation would use (the baseline).
        group.throughput(Throughput::Bytes((k * n * 4) as u64));
        group.bench_function(BenchmarkId::new("row-major loop", name), |b| {
            b.iter(|| {
                out.fill(0.0);
                for r in 0..rows {
                    let o = &mut out[r * n..(r + 1) * n];
                    for kk in 0..k {
                        let xv = x[r * k + kk];
                        o.iter_mut()
                            .zip(&w[kk * n..(kk + 1) * n])
                            .for_each(|(o, &w)| *o += xv * w);
                    }
                }
            })
        });
    }
    group.finish();
}

fn elementwise(c: &mut Criterion) {
    let (rows, dim, hidden) = (16, 768, 3072);
    let mut x = values(rows * dim);
    c.bench_function("layer_norm 16x768", |b| {
        b.iter(|| layer_norm_rows(&mut x, dim, None, None, 1e-6))
    });
    let mut h = values(rows * hidden);
    c.bench_function("gelu 16x3072", |b| b.iter(|| gelu_in_place(&mut h)));
    let (d, visible) = (48, 256);
    let (q, kv) = (values(d), values(visible * d));
    let (mut out, mut scratch) = (vec![0f32; d], Vec::new());
    let head = CachedHead {
        keys_t: &kv,
        stride: visible,
        values: &kv,
        visible,
    };
    c.bench_function("attend_one d48 over 256 keys", |b| {
        b.iter(|| attend_one(&q, head, 0.144, &mut out, &mut scratch))
    });
}

fn training_attention(c: &mut Criterion) {
    let shape = CausalShape {
        pairs: 64,
        queries: 258,
        keys: 258,
        head_dim: 32,
    };
    let n = shape.pairs * shape.queries * shape.head_dim;
    let (q, k, v, go) = (
        values(n),
        values(n + 7)[7..].to_vec(),
        values(n + 3)[3..].to_vec(),
        values(n),
    );
    let (mut out, mut lse) = (vec![0f32; n], vec![0f32; shape.pairs * shape.queries]);
    let options = CausalOptions::new(1.0 / (shape.head_dim as f32).sqrt());
    // Multiply-adds of the visible (causal) part: 2 products forward, 5 backward.
    let visible = (shape.queries * (shape.queries + 1) / 2) as u64;
    let macs = visible * (shape.pairs * shape.head_dim) as u64;
    let mut group = c.benchmark_group(format!("causal_attention {}", Isa::active().name()));
    group.throughput(Throughput::Elements(2 * 2 * macs));
    group.bench_function("forward 64x258x32", |b| {
        b.iter(|| causal_attention_forward(&q, &k, &v, shape, options, &mut out, &mut lse).unwrap())
    });
    let (mut gq, mut gk, mut gv) = (vec![0f32; n], vec![0f32; n], vec![0f32; n]);
    group.throughput(Throughput::Elements(2 * 5 * macs));
    group.bench_function("backward 64x258x32", |b| {
        b.iter(|| {
            causal_attention_backward(
                &q, &k, &v, &out, &lse, &go, shape, options, &mut gq, &mut gk, &mut gv,
            )
            .unwrap()
        })
    });
    group.finish();
}

/// The training step's fused element-wise kernels at the benchmark model's size (batch 8,
/// 258 positions, C 256, I 1024, V 1024).
fn training_elementwise(c: &mut Criterion) {
    let (rows, width, hidden, vocab) = (8 * 258, 256, 1024, 1024);
    let mut group = c.benchmark_group("training_elementwise");
    let x = values(rows * hidden);
    let (mut out, mut grad) = (vec![0f32; x.len()], vec![0f32; x.len()]);
    group.bench_function("gelu_forward 2064x1024", |b| {
        b.iter(|| gelu_forward(&x, &mut out).unwrap())
    });
    group.bench_function("gelu_backward 2064x1024", |b| {
        b.iter(|| gelu_backward(&x, &out, &mut grad).unwrap())
    });
    let x = values(rows * width);
    let (shift, scale, gamma) = (values(x.len()), values(x.len()), values(width));
    let affine = NormAffine {
        gamma: Some(&gamma),
        beta: Some(&gamma),
    };
    let modulation = Some(NormModulation {
        shift: &shift,
        scale: &scale,
    });
    let (mut out, mut stats) = (vec![0f32; x.len()], vec![0f32; 2 * rows]);
    group.bench_function("layer_norm_forward modulated 2064x256", |b| {
        b.iter(|| {
            layer_norm_forward(&x, width, affine, modulation, 1e-6, &mut out, &mut stats).unwrap()
        })
    });
    let (mut gx, mut gs, mut gg, mut gb) = (
        vec![0f32; x.len()],
        vec![0f32; x.len()],
        vec![0f32; width],
        vec![0f32; width],
    );
    group.bench_function("layer_norm_backward modulated 2064x256", |b| {
        b.iter(|| {
            let grads = NormGrads {
                x: &mut gx,
                gamma: Some(&mut gg),
                beta: Some(&mut gb),
                scale: Some(&mut gs),
            };
            layer_norm_backward(&x, width, affine, modulation, &stats, &shift, grads).unwrap()
        })
    });
    // The attention's query / key norms: one row per (position, head), 32 values, affine.
    let (heads, head_dim) = (8, width / 8);
    let (mut qs, mut gq) = (vec![0f32; 2 * rows * heads], vec![0f32; x.len()]);
    let head_affine = NormAffine {
        gamma: Some(&gamma[..head_dim]),
        beta: Some(&gamma[..head_dim]),
    };
    group.bench_function("layer_norm_forward heads 16512x32", |b| {
        b.iter(|| {
            layer_norm_forward(&x, head_dim, head_affine, None, 1e-6, &mut out, &mut qs).unwrap()
        })
    });
    let (mut hg, mut hb) = (vec![0f32; head_dim], vec![0f32; head_dim]);
    group.bench_function("layer_norm_backward heads 16512x32", |b| {
        b.iter(|| {
            let grads = NormGrads {
                x: &mut gq,
                gamma: Some(&mut hg),
                beta: Some(&mut hb),
                scale: None,
            };
            layer_norm_backward(&x, head_dim, head_affine, None, &qs, &shift, grads).unwrap()
        })
    });
    let shape = TokenShape {
        batch: 8,
        positions: 258,
        targets: 257,
        vocab,
    };
    let logits = values(8 * 258 * vocab);
    let labels: Vec<i64> = (0..8 * 257).map(|i| (i * 37 % vocab) as i64).collect();
    let (mut loss, mut lse) = (vec![0f32; 8 * 257], vec![0f32; 8 * 257]);
    let mut grad = vec![0f32; logits.len()];
    group.bench_function("cross_entropy_forward 8x258x1024", |b| {
        b.iter(|| cross_entropy_forward(&logits, &labels, shape, &mut loss, &mut lse).unwrap())
    });
    group.bench_function("cross_entropy_backward 8x258x1024", |b| {
        b.iter(|| cross_entropy_backward(&logits, &labels, &lse, &loss, shape, &mut grad).unwrap())
    });
    group.finish();
}

criterion_group!(
    benches,
    products,
    elementwise,
    training_attention,
    training_elementwise
);
criterion_main!(benches);
