//! Softmax cross-entropy of next-token logits with its backward, fused (the training loss of
//! paper §3.1: `−log p(x_t | x_<t, class)` per target).
//!
//! `logits` are `[batch, positions, vocab]` and only the first `targets` positions of each
//! sample have a label (RAR's logits have one position more than targets: the prediction
//! after the last token is unused). Per labelled row the forward keeps its log-sum-exp, so the
//! backward, `softmax − one_hot(label)`, reads each logit once more and stores nothing else.
//! Rows run on rayon's threads.

use rayon::prelude::*;

use crate::error::{KernelError, Result};
use crate::exp::exp;
use crate::isa::with_simd;

/// Rows per rayon task.
const TASK_ROWS: usize = 16;

/// Sizes of a cross-entropy call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenShape {
    /// Samples.
    pub batch: usize,
    /// Logit rows per sample.
    pub positions: usize,
    /// Labelled rows per sample, the first ones (`≤ positions`).
    pub targets: usize,
    /// Classes per row.
    pub vocab: usize,
}

impl TokenShape {
    fn check(&self, logits: usize, labels: &[i64], others: &[(&str, usize)]) -> Result<()> {
        let fail = |what: String| Err(KernelError::Shape(format!("cross entropy: {what}")));
        if self.targets > self.positions || self.vocab == 0 {
            return fail(format!("{self:?}: targets exceed positions or no classes"));
        }
        let want = self.batch * self.positions * self.vocab;
        if logits != want {
            return fail(format!(
                "`logits` hold {logits} values, {self:?} needs {want}"
            ));
        }
        let rows = self.batch * self.targets;
        for (name, len) in [("labels", labels.len())].iter().chain(others) {
            if *len != rows {
                return fail(format!(
                    "`{name}` holds {len} values, {self:?} needs {rows}"
                ));
            }
        }
        if let Some((i, &label)) = labels
            .iter()
            .enumerate()
            .find(|&(_, &l)| l < 0 || l as usize >= self.vocab)
        {
            return fail(format!(
                "label {label} of target {i} is outside the vocabulary 0..{}",
                self.vocab
            ));
        }
        Ok(())
    }

    /// Logit row of target `t` (sample `t / targets`, position `t % targets`).
    fn row(&self, t: usize) -> usize {
        (t / self.targets) * self.positions + t % self.targets
    }
}

/// `max`, then `max + ln Σ exp(v − max)` of one row.
#[inline(always)]
fn log_sum_exp(row: &[f32]) -> f32 {
    let mut m = [f32::NEG_INFINITY; 8];
    let mut chunks = row.chunks_exact(8);
    for c in &mut chunks {
        for i in 0..8 {
            m[i] = m[i].max(c[i]);
        }
    }
    let tail = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let max = m.iter().fold(tail, |a, &b| a.max(b));
    let mut s = [0f32; 8];
    let mut chunks = row.chunks_exact(8);
    for c in &mut chunks {
        for i in 0..8 {
            s[i] += exp(c[i] - max);
        }
    }
    let tail: f32 = chunks.remainder().iter().map(|&v| exp(v - max)).sum();
    max + (s.iter().sum::<f32>() + tail).ln()
}

/// Per target: `loss = lse − logit[label]` and its `lse` (both `[batch · targets]`).
pub fn cross_entropy_forward(
    logits: &[f32],
    labels: &[i64],
    shape: TokenShape,
    loss: &mut [f32],
    lse: &mut [f32],
) -> Result<()> {
    shape.check(
        logits.len(),
        labels,
        &[("loss", loss.len()), ("lse", lse.len())],
    )?;
    let v = shape.vocab;
    loss.par_chunks_mut(TASK_ROWS)
        .zip(lse.par_chunks_mut(TASK_ROWS))
        .enumerate()
        .for_each(|(block, (loss, lse))| {
            with_simd(
                #[inline(always)]
                || {
                    for (i, (l, s)) in loss.iter_mut().zip(lse.iter_mut()).enumerate() {
                        let t = block * TASK_ROWS + i;
                        let row = &logits[shape.row(t) * v..][..v];
                        *s = log_sum_exp(row);
                        *l = *s - row[labels[t] as usize];
                    }
                },
            )
        });
    Ok(())
}

/// `grad_logits[row] = grad_loss[t] · (softmax(row) − one_hot(label))` for labelled rows and 0
/// for the others; `lse` from [`cross_entropy_forward`].
pub fn cross_entropy_backward(
    logits: &[f32],
    labels: &[i64],
    lse: &[f32],
    grad_loss: &[f32],
    shape: TokenShape,
    grad_logits: &mut [f32],
) -> Result<()> {
    shape.check(
        logits.len(),
        labels,
        &[("lse", lse.len()), ("grad_loss", grad_loss.len())],
    )?;
    if grad_logits.len() != logits.len() {
        return Err(KernelError::Shape(format!(
            "cross entropy: `grad_logits` hold {} values, the logits {}",
            grad_logits.len(),
            logits.len()
        )));
    }
    let (v, p) = (shape.vocab, shape.positions);
    grad_logits
        .par_chunks_mut(v)
        .enumerate()
        .for_each(|(row, out)| {
            let (sample, position) = (row / p, row % p);
            if position >= shape.targets {
                out.fill(0.0);
                return;
            }
            let t = sample * shape.targets + position;
            let (g, s) = (grad_loss[t], lse[t]);
            let logits = &logits[row * v..][..v];
            with_simd(
                #[inline(always)]
                || {
                    for (o, &z) in out.iter_mut().zip(logits) {
                        *o = g * exp(z - s);
                    }
                },
            );
            out[labels[t] as usize] -= g;
        });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> TokenShape {
        TokenShape {
            batch: 3,
            positions: 6,
            targets: 5,
            vocab: 37,
        }
    }

    fn logits(s: TokenShape) -> Vec<f32> {
        (0..s.batch * s.positions * s.vocab)
            .map(|i| ((i as f32) * 0.377).sin() * 4.0)
            .collect()
    }

    fn labels(s: TokenShape) -> Vec<i64> {
        (0..s.batch * s.targets)
            .map(|i| (i * 7 % s.vocab) as i64)
            .collect()
    }

    /// `Σ_t w_t · loss_t` in f64, the loss by its definition `−log softmax(row)[label]`.
    fn weighted_loss(z: &[f64], labels: &[i64], w: &[f64], s: TokenShape) -> f64 {
        (0..s.batch * s.targets)
            .map(|t| {
                let row = &z[s.row(t) * s.vocab..][..s.vocab];
                let max = row.iter().cloned().fold(f64::MIN, f64::max);
                let sum: f64 = row.iter().map(|v| (v - max).exp()).sum();
                w[t] * -((row[labels[t] as usize] - max).exp() / sum).ln()
            })
            .sum()
    }

    #[test]
    fn loss_and_gradient_match_the_f64_definition_and_central_differences() {
        let s = shape();
        let (z, y) = (logits(s), labels(s));
        let rows = s.batch * s.targets;
        let (mut loss, mut lse) = (vec![0f32; rows], vec![0f32; rows]);
        cross_entropy_forward(&z, &y, s, &mut loss, &mut lse).unwrap();
        let z64: Vec<f64> = z.iter().map(|&v| v as f64).collect();
        for t in 0..rows {
            let mut unit = vec![0f64; rows];
            unit[t] = 1.0;
            let want = weighted_loss(&z64, &y, &unit, s);
            assert!(
                (loss[t] as f64 - want).abs() < 1e-5 * want.abs().max(1.0),
                "loss {t}"
            );
        }
        let w: Vec<f32> = (0..rows).map(|t| 0.5 + (t as f32 * 0.3).cos()).collect();
        let w64: Vec<f64> = w.iter().map(|&v| v as f64).collect();
        let mut grad = vec![f32::NAN; z.len()];
        cross_entropy_backward(&z, &y, &lse, &w, s, &mut grad).unwrap();
        let h = 1e-5;
        let mut zz = z64.clone();
        let (mut num, mut den) = (0f64, 0f64);
        for i in 0..z.len() {
            let keep = zz[i];
            zz[i] = keep + h;
            let up = weighted_loss(&zz, &y, &w64, s);
            zz[i] = keep - h;
            let down = weighted_loss(&zz, &y, &w64, s);
            zz[i] = keep;
            let want = (up - down) / (2.0 * h);
            num += (grad[i] as f64 - want).powi(2);
            den += want * want;
        }
        assert!(
            (num / den).sqrt() < 1e-5,
            "gradient rel {}",
            (num / den).sqrt()
        );
        // The unlabelled last position of each sample gets a zero gradient.
        let last = (s.positions - 1) * s.vocab;
        assert!(grad[last..last + s.vocab].iter().all(|&g| g == 0.0));
    }

    #[test]
    fn refuses_bad_labels_and_sizes() {
        let s = shape();
        let (z, mut y) = (logits(s), labels(s));
        let rows = s.batch * s.targets;
        let (mut loss, mut lse) = (vec![0f32; rows], vec![0f32; rows]);
        y[4] = s.vocab as i64;
        let err = cross_entropy_forward(&z, &y, s, &mut loss, &mut lse).unwrap_err();
        assert!(err.to_string().contains("label 37 of target 4"), "{err}");
        y[4] = -1;
        assert!(cross_entropy_forward(&z, &y, s, &mut loss, &mut lse).is_err());
        let y = labels(s);
        assert!(cross_entropy_forward(&z[1..], &y, s, &mut loss, &mut lse).is_err());
        assert!(cross_entropy_forward(&z, &y[1..], s, &mut loss, &mut lse).is_err());
        let mut grad = vec![0f32; z.len() - 1];
        assert!(cross_entropy_backward(&z, &y, &lse, &loss, s, &mut grad).is_err());
        let bad = TokenShape { targets: 7, ..s };
        assert!(cross_entropy_forward(&z, &y, bad, &mut loss, &mut lse).is_err());
    }
}
