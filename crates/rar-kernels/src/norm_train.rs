//! LayerNorm with its affine parameters and the adaLN modulation, forward and backward, for
//! training (paper §3.2: every block normalises, then modulates with the per-position
//! condition, DiT's adaLN):
//!
//! ```text
//! n = (x − mean) / √(var + eps)        per row of `width` values, biased variance
//! y = n ⊙ γ + β                          γ, β: `[width]` (1 and 0 when absent)
//! out = y ⊙ (1 + scale) + shift          scale, shift: `[rows, width]` (when modulated)
//! ```
//!
//! A decomposed autodiff graph takes about eight passes over the rows forward and more
//! backward; here the forward is one read and one write (plus the per-row statistics kept
//! for the backward: mean and `1/σ`), the backward one pass that recomputes `n` from them.
//! Row blocks run on rayon's threads; the `γ`, `β` gradients are summed per block and then
//! in block order, so results do not depend on the number of threads.

use rayon::prelude::*;

use crate::error::{KernelError, Result};
use crate::isa::with_simd;
use crate::reduce::{mean_and_inverse_deviation, sum_pairwise};

/// Values per rayon task (128 KiB of `x`; tiny in tests, so that they cover many blocks).
const TASK_VALUES: usize = if cfg!(test) { 64 } else { 1 << 15 };

/// The optional per-feature affine parameters (`None`: 1 and 0).
#[derive(Clone, Copy, Debug, Default)]
pub struct NormAffine<'a> {
    /// Scale `γ`, `[width]`.
    pub gamma: Option<&'a [f32]>,
    /// Bias `β`, `[width]`.
    pub beta: Option<&'a [f32]>,
}

/// The per-row adaLN modulation applied after the norm, both `[rows, width]`.
#[derive(Clone, Copy, Debug)]
pub struct NormModulation<'a> {
    /// Added last.
    pub shift: &'a [f32],
    /// The output is scaled by `1 + scale`.
    pub scale: &'a [f32],
}

/// Gradient buffers of [`layer_norm_backward`]; the optional ones are only computed when
/// given. The gradient of `shift` is `grad_out` itself, so it has no buffer.
#[derive(Debug)]
pub struct NormGrads<'a> {
    /// `[rows, width]`.
    pub x: &'a mut [f32],
    /// `[width]` (requires `gamma` in the affine parameters).
    pub gamma: Option<&'a mut [f32]>,
    /// `[width]`.
    pub beta: Option<&'a mut [f32]>,
    /// `[rows, width]` (requires a modulation).
    pub scale: Option<&'a mut [f32]>,
}

fn shape_error(what: String) -> KernelError {
    KernelError::Shape(format!("layer norm: {what}"))
}

/// Rows of `x` for `width`, after checking every buffer against them.
fn check(
    x: usize,
    width: usize,
    affine: NormAffine,
    modulation: Option<NormModulation>,
    others: &[(&str, usize, bool)],
) -> Result<usize> {
    if width == 0 || !x.is_multiple_of(width) {
        return Err(shape_error(format!(
            "{x} values are not whole rows of width {width}"
        )));
    }
    let rows = x / width;
    let mut lens = vec![
        ("gamma", affine.gamma.map(<[f32]>::len), width),
        ("beta", affine.beta.map(<[f32]>::len), width),
        ("shift", modulation.map(|m| m.shift.len()), x),
        ("scale", modulation.map(|m| m.scale.len()), x),
    ];
    for &(name, len, per_row) in others {
        lens.push((name, Some(len), if per_row { rows } else { x }));
    }
    for (name, len, want) in lens {
        if let Some(len) = len
            && len != want
        {
            return Err(shape_error(format!(
                "`{name}` holds {len} values, {rows} rows of {width} need {want}"
            )));
        }
    }
    Ok(rows)
}

/// Rows per rayon task for `width`.
fn task_rows(width: usize) -> usize {
    (TASK_VALUES / width).max(1)
}

/// `o = (row − mean)·inv`, then `⊙ γ + β` when `AFFINE`, then `⊙ (1 + scale) + shift` when
/// `MODULATED`, in one pass (one store per value; a loop per step stored each value up to
/// three times).
#[inline(always)]
fn normalise_row<const AFFINE: bool, const MODULATED: bool>(
    row: &[f32],
    o: &mut [f32],
    (mean, inv): (f32, f32),
    (gamma, beta): (&[f32], &[f32]),
    (shift, scale): (&[f32], &[f32]),
) {
    let w = row.len();
    let (o, gamma, beta) = (
        &mut o[..w],
        &gamma[..if AFFINE { w } else { 0 }],
        &beta[..if AFFINE { w } else { 0 }],
    );
    let (shift, scale) = (
        &shift[..if MODULATED { w } else { 0 }],
        &scale[..if MODULATED { w } else { 0 }],
    );
    for i in 0..w {
        let mut y = (row[i] - mean) * inv;
        if AFFINE {
            y = y * gamma[i] + beta[i];
        }
        if MODULATED {
            y = y * (1.0 + scale[i]) + shift[i];
        }
        o[i] = y;
    }
}

/// Errors unless `stats` holds the two statistics of each of `rows` rows.
fn check_stats(len: usize, rows: usize) -> Result<()> {
    if len != 2 * rows {
        return Err(shape_error(format!(
            "`stats` holds {len} values, {rows} rows need {}",
            2 * rows
        )));
    }
    Ok(())
}

/// A block of rows from `first` on, with the per-row parameters of the norm.
#[derive(Clone, Copy)]
struct Rows<'a> {
    x: &'a [f32],
    first: usize,
    affine: NormAffine<'a>,
    modulation: Option<NormModulation<'a>>,
}

/// The forward of one block of rows (`out`, `stats` its rows).
#[inline(always)]
fn forward_rows(width: usize, rows: Rows, eps: f32, out: &mut [f32], stats: &mut [f32]) {
    let Rows {
        x,
        first,
        affine,
        modulation,
    } = rows;
    // A missing γ or β is 1 or 0 (in practice both are given or neither; only a missing one
    // is filled in).
    let affine_given = affine.gamma.is_some() || affine.beta.is_some();
    let filled = |given: Option<&[f32]>, value: f32| match given {
        None if affine_given => vec![value; width],
        _ => Vec::new(),
    };
    let (ones, zeros) = (filled(affine.gamma, 1.0), filled(affine.beta, 0.0));
    let gamma = affine.gamma.unwrap_or(&ones);
    let beta = affine.beta.unwrap_or(&zeros);
    let none: &[f32] = &[];
    let shift = |at: usize| modulation.map_or(none, |m| &m.shift[at..at + width]);
    let scale = |at: usize| modulation.map_or(none, |m| &m.scale[at..at + width]);
    for (r, (o, st)) in out
        .chunks_exact_mut(width)
        .zip(stats.chunks_mut(2))
        .enumerate()
    {
        let at = (first + r) * width;
        let row = &x[at..at + width];
        let (mean, inv) = mean_and_inverse_deviation(row, eps);
        st[0] = mean;
        st[1] = inv;
        let (params, modulated) = ((gamma, beta), (shift(at), scale(at)));
        match (affine_given, modulation.is_some()) {
            (false, false) => normalise_row::<false, false>(row, o, (mean, inv), params, modulated),
            (true, false) => normalise_row::<true, false>(row, o, (mean, inv), params, modulated),
            (false, true) => normalise_row::<false, true>(row, o, (mean, inv), params, modulated),
            (true, true) => normalise_row::<true, true>(row, o, (mean, inv), params, modulated),
        }
    }
}

/// Forward: `out` as in the module docs, and `stats[2r] = mean`, `stats[2r + 1] = 1/σ` of
/// row `r` for [`layer_norm_backward`].
pub fn layer_norm_forward(
    x: &[f32],
    width: usize,
    affine: NormAffine,
    modulation: Option<NormModulation>,
    eps: f32,
    out: &mut [f32],
    stats: &mut [f32],
) -> Result<()> {
    let rows = check(
        x.len(),
        width,
        affine,
        modulation,
        &[("out", out.len(), false), ("stats", stats.len() / 2, true)],
    )?;
    check_stats(stats.len(), rows)?;
    let block = task_rows(width);
    let run = |(b, (out, stats)): (usize, (&mut [f32], &mut [f32]))| {
        let rows = Rows {
            x,
            first: b * block,
            affine,
            modulation,
        };
        with_simd(
            #[inline(always)]
            || forward_rows(width, rows, eps, out, stats),
        )
    };
    out.par_chunks_mut(block * width)
        .zip(stats.par_chunks_mut(block * 2))
        .enumerate()
        .for_each(run);
    Ok(())
}

/// What a backward row block reads besides its rows: the output gradient, the forward's
/// statistics, and whether the `γ`, `β` sums are wanted.
#[derive(Clone, Copy)]
struct RowGrads<'a> {
    grad_out: &'a [f32],
    stats: &'a [f32],
    want_params: bool,
}

/// The backward of one block of rows: `gx` (and `gs`, the scale
/// gradient) are its rows; `params` accumulates the block's `(Σ dy ⊙ n, Σ dy)`; `dy`, `n` are
/// one row of scratch each.
#[inline(always)]
#[allow(clippy::type_complexity)]
fn backward_rows(
    width: usize,
    rows: Rows,
    bufs: RowGrads,
    (gx, mut gs): (&mut [f32], Option<&mut [f32]>),
    (partial, dy, n): (&mut [f32], &mut [f32], &mut [f32]),
) {
    let Rows {
        x,
        first,
        affine,
        modulation,
    } = rows;
    let RowGrads {
        grad_out,
        stats,
        want_params,
    } = bufs;
    let (dy, n) = (&mut dy[..width], &mut n[..width]);
    for (r, gx) in gx.chunks_exact_mut(width).enumerate() {
        let row_index = first + r;
        let at = row_index * width;
        let row = &x[at..at + width];
        let g = &grad_out[at..at + width];
        let (mean, inv) = (stats[2 * row_index], stats[2 * row_index + 1]);
        // One simple loop per step, so that each vectorises.
        for (n, &v) in n.iter_mut().zip(row) {
            *n = (v - mean) * inv;
        }
        match modulation {
            Some(m) => {
                let scale = &m.scale[at..at + width];
                for ((d, &g), &s) in dy.iter_mut().zip(g).zip(scale) {
                    *d = g * (1.0 + s);
                }
                if let Some(gs) = gs.as_deref_mut() {
                    let gs = &mut gs[r * width..(r + 1) * width];
                    for ((o, &g), &n) in gs.iter_mut().zip(g).zip(&*n) {
                        *o = g * n;
                    }
                    if let Some(gm) = affine.gamma {
                        gs.iter_mut().zip(gm).for_each(|(o, &gm)| *o *= gm);
                    }
                    if let Some(bt) = affine.beta {
                        for ((o, &g), &bt) in gs.iter_mut().zip(g).zip(bt) {
                            *o += g * bt;
                        }
                    }
                }
            }
            None => dy.copy_from_slice(g),
        }
        if want_params {
            let (pg, pb) = partial.split_at_mut(width);
            for (((pg, pb), &d), &n) in pg.iter_mut().zip(pb).zip(&*dy).zip(&*n) {
                *pg += d * n;
                *pb += d;
            }
        }
        // dn = dy ⊙ γ, kept in `dy`.
        if let Some(gm) = affine.gamma {
            dy.iter_mut().zip(gm).for_each(|(d, &gm)| *d *= gm);
        }
        let (mut s_dn, mut s_dnn) = ([0f32; 8], [0f32; 8]);
        let (mut dc, mut nc) = (dy.chunks_exact(8), n.chunks_exact(8));
        for (d, n) in (&mut dc).zip(&mut nc) {
            let (d, n): (&[f32; 8], &[f32; 8]) =
                (d.try_into().expect("8"), n.try_into().expect("8"));
            for i in 0..8 {
                s_dn[i] += d[i];
                s_dnn[i] += d[i] * n[i];
            }
        }
        for (&d, &n) in dc.remainder().iter().zip(nc.remainder()) {
            s_dn[0] += d;
            s_dnn[0] += d * n;
        }
        let w = width as f32;
        let mean_dn = sum_pairwise(s_dn) / w;
        let mean_dnn = sum_pairwise(s_dnn) / w;
        for ((o, &d), &n) in gx.iter_mut().zip(&*dy).zip(&*n) {
            *o = (d - mean_dn - n * mean_dnn) * inv;
        }
    }
}

/// Backward of [`layer_norm_forward`] from `grad_out` `[rows, width]` and the `stats` the
/// forward wrote. With `n`, `y` as in the module docs and `g = grad_out`:
///
/// ```text
/// grad_scale = g ⊙ y,   dy = g ⊙ (1 + scale)   (dy = g unmodulated)
/// grad_γ = Σ_rows dy ⊙ n,   grad_β = Σ_rows dy,   dn = dy ⊙ γ
/// grad_x = (dn − mean(dn) − n ⊙ mean(dn ⊙ n)) / σ
/// ```
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_backward(
    x: &[f32],
    width: usize,
    affine: NormAffine,
    modulation: Option<NormModulation>,
    stats: &[f32],
    grad_out: &[f32],
    grads: NormGrads,
) -> Result<()> {
    let NormGrads {
        x: grad_x,
        gamma: grad_gamma,
        beta: grad_beta,
        scale: grad_scale,
    } = grads;
    let mut others = vec![
        ("stats", stats.len() / 2, true),
        ("grad_out", grad_out.len(), false),
        ("grad_x", grad_x.len(), false),
    ];
    if let Some(s) = &grad_scale {
        others.push(("grad_scale", s.len(), false));
    }
    let rows = check(x.len(), width, affine, modulation, &others)?;
    for (name, len) in [
        ("grad_gamma", grad_gamma.as_ref().map(|g| g.len())),
        ("grad_beta", grad_beta.as_ref().map(|g| g.len())),
    ] {
        if let Some(len) = len
            && len != width
        {
            return Err(shape_error(format!(
                "`{name}` holds {len} values, width {width}"
            )));
        }
    }
    if grad_scale.is_some() && modulation.is_none() {
        return Err(shape_error("`grad_scale` without a modulation".into()));
    }
    if grad_gamma.is_some() && affine.gamma.is_none() {
        return Err(shape_error("`grad_gamma` without `gamma`".into()));
    }
    check_stats(stats.len(), rows)?;
    let block = task_rows(width);
    let blocks = rows.div_ceil(block);
    let want_params = grad_gamma.is_some() || grad_beta.is_some();
    let mut scale_blocks: Vec<Option<&mut [f32]>> = match grad_scale {
        Some(s) => s.chunks_mut(block * width).map(Some).collect(),
        None => (0..blocks).map(|_| None).collect(),
    };
    scale_blocks.truncate(blocks);
    // Per block: (Σ dy ⊙ n, Σ dy) over its rows, `[2 · width]`.
    let partials: Vec<Vec<f32>> = grad_x
        .par_chunks_mut(block * width)
        .zip(scale_blocks.into_par_iter())
        .enumerate()
        .map(|(b, (gx, mut gs))| {
            let mut params = vec![0f32; if want_params { 2 * width } else { 0 }];
            let (mut dy, mut n) = (vec![0f32; width], vec![0f32; width]);
            let rows = Rows {
                x,
                first: b * block,
                affine,
                modulation,
            };
            let bufs = RowGrads {
                grad_out,
                stats,
                want_params,
            };
            with_simd(
                #[inline(always)]
                || {
                    backward_rows(
                        width,
                        rows,
                        bufs,
                        (gx, gs.as_deref_mut()),
                        (&mut params, &mut dy, &mut n),
                    )
                },
            );
            params
        })
        .collect();
    if want_params {
        let mut total = vec![0f32; 2 * width];
        for p in &partials {
            for (t, v) in total.iter_mut().zip(p) {
                *t += v;
            }
        }
        if let Some(gg) = grad_gamma {
            gg.copy_from_slice(&total[..width]);
        }
        if let Some(gb) = grad_beta {
            gb.copy_from_slice(&total[width..]);
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "norm_train_tests.rs"]
mod tests;
