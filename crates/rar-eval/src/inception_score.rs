//! The Inception Score (Salimans et al. 2016, §4), as the evaluator computes it
//! (`compute_inception_score`): the class probabilities of the samples, in consecutive splits
//! of `split_size` rows (the last split may be shorter), `exp(E_x KL(p(y|x) ‖ p(y)))` per
//! split with `p(y)` the split's mean, averaged over the splits. The evaluator uses splits of
//! 5000 ([`IS_SPLIT_SIZE`]).

use crate::error::{EvalError, Result, check_finite};

/// The evaluator's split size.
pub const IS_SPLIT_SIZE: usize = 5000;

/// The Inception Score of `probs`, row-major `[N, classes]` class probabilities (each row a
/// softmax output), computed in f64.
///
/// A probability of exactly 0 contributes `0 · log 0 = 0` (its limit); numpy would give NaN
/// there, which no softmax in f32 produces for the evaluator's logits in practice.
pub fn inception_score(probs: &[f32], classes: usize, split_size: usize) -> Result<f64> {
    if classes == 0 || !probs.len().is_multiple_of(classes) || probs.is_empty() {
        return Err(EvalError::Ragged {
            what: "class probabilities",
            len: probs.len(),
            width: classes,
        });
    }
    if split_size == 0 {
        return Err(EvalError::Invalid {
            what: "split size",
            reason: "must be positive".into(),
        });
    }
    check_finite("class probabilities", probs)?;
    if let Some(index) = probs.iter().position(|&p| p < 0.0) {
        return Err(EvalError::Invalid {
            what: "class probabilities",
            reason: format!("negative probability {} at index {index}", probs[index]),
        });
    }
    let rows: Vec<&[f32]> = probs.chunks(classes).collect();
    let scores: Vec<f64> = rows
        .chunks(split_size)
        .map(|split| {
            let mut marginal = vec![0.0f64; classes];
            for row in split {
                for (m, &p) in marginal.iter_mut().zip(row.iter()) {
                    *m += p as f64;
                }
            }
            marginal.iter_mut().for_each(|m| *m /= split.len() as f64);
            let kl: f64 = split
                .iter()
                .map(|row| {
                    row.iter()
                        .zip(&marginal)
                        .filter(|(p, _)| **p > 0.0)
                        .map(|(&p, &m)| p as f64 * ((p as f64).ln() - m.ln()))
                        .sum::<f64>()
                })
                .sum::<f64>()
                / split.len() as f64;
            kl.exp()
        })
        .collect();
    Ok(scores.iter().sum::<f64>() / scores.len() as f64)
}
