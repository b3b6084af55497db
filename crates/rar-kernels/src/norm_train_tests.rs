use super::*;

fn data(n: usize, seed: f32, amp: f32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as f32 + seed) * 0.731).sin() * amp)
        .collect()
}

/// The f64 definition: `Σ g ⊙ out` for the inputs given, and `out`.
#[allow(clippy::too_many_arguments)]
fn reference(
    x: &[f64],
    width: usize,
    gamma: Option<&[f64]>,
    beta: Option<&[f64]>,
    shift: Option<&[f64]>,
    scale: Option<&[f64]>,
    eps: f64,
) -> Vec<f64> {
    let mut out = vec![0f64; x.len()];
    for (r, row) in x.chunks(width).enumerate() {
        let mean = row.iter().sum::<f64>() / width as f64;
        let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / width as f64;
        for c in 0..width {
            let at = r * width + c;
            let mut y = (row[c] - mean) / (var + eps).sqrt();
            y = y * gamma.map_or(1.0, |g| g[c]) + beta.map_or(0.0, |b| b[c]);
            if let (Some(sh), Some(sc)) = (shift, scale) {
                y = y * (1.0 + sc[at]) + sh[at];
            }
            out[at] = y;
        }
    }
    out
}

fn to64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&v| v as f64).collect()
}

fn rel(a: &[f32], b: &[f64]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(&a, b)| (a as f64 - b).powi(2)).sum();
    let den: f64 = b.iter().map(|b| b * b).sum();
    (num / den).sqrt()
}

/// Central differences of `Σ g ⊙ reference(·)` with respect to one of the inputs.
fn numeric(values: &[f64], loss: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let h = 1e-5;
    let mut v = values.to_vec();
    (0..values.len())
        .map(|i| {
            let keep = v[i];
            v[i] = keep + h;
            let up = loss(&v);
            v[i] = keep - h;
            let down = loss(&v);
            v[i] = keep;
            (up - down) / (2.0 * h)
        })
        .collect()
}

fn case(rows: usize, width: usize, affine: bool, modulated: bool) {
    let eps = 1e-6f32;
    let x = data(rows * width, 0.3, 2.0);
    let (gamma, beta) = (data(width, 5.0, 1.0), data(width, 9.0, 0.5));
    let (shift, scale) = (data(rows * width, 2.0, 0.7), data(rows * width, 7.0, 0.6));
    let g = data(rows * width, 11.0, 1.0);
    let aff = if affine {
        NormAffine {
            gamma: Some(&gamma),
            beta: Some(&beta),
        }
    } else {
        NormAffine::default()
    };
    let modulation = modulated.then_some(NormModulation {
        shift: &shift,
        scale: &scale,
    });
    let mut out = vec![0f32; x.len()];
    let mut stats = vec![0f32; 2 * rows];
    layer_norm_forward(&x, width, aff, modulation, eps, &mut out, &mut stats).unwrap();

    let (x64, g64) = (to64(&x), to64(&g));
    let (gm64, bt64, sh64, sc64) = (to64(&gamma), to64(&beta), to64(&shift), to64(&scale));
    let opt = |v: &[f64], on: bool| on.then(|| v.to_vec());
    let params = |x: &[f64], gm: &[f64], bt: &[f64], sh: &[f64], sc: &[f64]| {
        let y = reference(
            x,
            width,
            opt(gm, affine).as_deref(),
            opt(bt, affine).as_deref(),
            opt(sh, modulated).as_deref(),
            opt(sc, modulated).as_deref(),
            eps as f64,
        );
        y.iter().zip(&g64).map(|(y, g)| y * g).sum::<f64>()
    };
    let want = reference(
        &x64,
        width,
        opt(&gm64, affine).as_deref(),
        opt(&bt64, affine).as_deref(),
        opt(&sh64, modulated).as_deref(),
        opt(&sc64, modulated).as_deref(),
        eps as f64,
    );
    assert!(rel(&out, &want) < 1e-6, "forward {}", rel(&out, &want));

    let mut gx = vec![0f32; x.len()];
    let (mut gg, mut gb) = (vec![0f32; width], vec![0f32; width]);
    let mut gs = vec![0f32; x.len()];
    layer_norm_backward(
        &x,
        width,
        aff,
        modulation,
        &stats,
        &g,
        NormGrads {
            x: &mut gx,
            gamma: affine.then_some(&mut gg[..]),
            beta: affine.then_some(&mut gb[..]),
            scale: modulated.then_some(&mut gs[..]),
        },
    )
    .unwrap();
    let label = format!("rows {rows} width {width} affine {affine} modulated {modulated}");
    let dx = numeric(&x64, |v| params(v, &gm64, &bt64, &sh64, &sc64));
    assert!(rel(&gx, &dx) < 1e-5, "grad x {}: {label}", rel(&gx, &dx));
    if affine {
        let dg = numeric(&gm64, |v| params(&x64, v, &bt64, &sh64, &sc64));
        let db = numeric(&bt64, |v| params(&x64, &gm64, v, &sh64, &sc64));
        assert!(rel(&gg, &dg) < 1e-5, "grad gamma: {label}");
        assert!(rel(&gb, &db) < 1e-5, "grad beta: {label}");
    }
    if modulated {
        let ds = numeric(&sc64, |v| params(&x64, &gm64, &bt64, &sh64, v));
        assert!(rel(&gs, &ds) < 1e-5, "grad scale: {label}");
    }
}

#[test]
fn forward_and_backward_match_the_f64_definition_and_central_differences() {
    // Widths below, at and above the eight lanes, rows over several rayon blocks.
    for (rows, width) in [(5, 3), (9, 8), (7, 37), (13, 32), (3, 64)] {
        for affine in [false, true] {
            for modulated in [false, true] {
                case(rows, width, affine, modulated);
            }
        }
    }
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let (rows, width) = (50, 24);
    let x = data(rows * width, 1.0, 3.0);
    let g = data(rows * width, 4.0, 1.0);
    let gamma = data(width, 2.0, 1.0);
    let aff = NormAffine {
        gamma: Some(&gamma),
        beta: None,
    };
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut out = vec![0f32; x.len()];
            let mut stats = vec![0f32; 2 * rows];
            layer_norm_forward(&x, width, aff, None, 1e-6, &mut out, &mut stats).unwrap();
            let (mut gx, mut gg) = (vec![0f32; x.len()], vec![0f32; width]);
            let grads = NormGrads {
                x: &mut gx,
                gamma: Some(&mut gg),
                beta: None,
                scale: None,
            };
            layer_norm_backward(&x, width, aff, None, &stats, &g, grads).unwrap();
            (out, gx, gg)
        })
    };
    assert_eq!(run(1), run(3));
}

#[test]
fn refuses_buffers_that_do_not_fit() {
    let x = vec![0f32; 12];
    let (mut out, mut stats) = (vec![0f32; 12], vec![0f32; 6]);
    assert!(
        layer_norm_forward(
            &x,
            5,
            NormAffine::default(),
            None,
            1e-6,
            &mut out,
            &mut stats
        )
        .is_err()
    );
    assert!(
        layer_norm_forward(
            &x,
            4,
            NormAffine::default(),
            None,
            1e-6,
            &mut out,
            &mut stats[..4]
        )
        .is_err()
    );
    let gamma = [1f32; 3];
    let aff = NormAffine {
        gamma: Some(&gamma),
        beta: None,
    };
    let err = layer_norm_forward(&x, 4, aff, None, 1e-6, &mut out, &mut stats).unwrap_err();
    assert!(err.to_string().contains("gamma"), "{err}");
    let shift = [0f32; 12];
    let short = [0f32; 8];
    let m = NormModulation {
        shift: &shift,
        scale: &short,
    };
    let err = layer_norm_forward(
        &x,
        4,
        NormAffine::default(),
        Some(m),
        1e-6,
        &mut out,
        &mut stats[..3],
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("scale") || err.to_string().contains("stats"),
        "{err}"
    );
    let (g, mut gx, mut gs) = (vec![0f32; 12], vec![0f32; 12], vec![0f32; 12]);
    let grads = NormGrads {
        x: &mut gx,
        gamma: None,
        beta: None,
        scale: Some(&mut gs),
    };
    let err =
        layer_norm_backward(&x, 4, NormAffine::default(), None, &stats, &g, grads).unwrap_err();
    assert!(err.to_string().contains("modulation"), "{err}");
}
