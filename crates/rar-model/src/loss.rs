//! The training loss and metric (the official `modeling/modules/losses.py`; the reference's `ARLoss`).
//!
//! Cross-entropy between `logits[:, 0:N]` and the permuted labels, averaged over all `B·N`
//! targets — no label smoothing, no ignore index, no per-token weights. The accuracy metric is
//! the per-sample fraction of arg-max hits averaged over the batch (equal to the global
//! fraction, since every sample has `N` targets).

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor};

/// Unreduced cross-entropy `[B, N]` of `logits` `[B, N + 1, V]` (the last position is
/// ignored) against `labels` `[B, N]`.
///
/// On flex (f32) this is one fused kernel with its own backward ([`crate::flex_kernels`]);
/// elsewhere `log_softmax` and a gather.
pub fn per_token_loss(logits: Tensor<3>, labels: Tensor<2, Int>) -> Tensor<2> {
    #[cfg(feature = "flex")]
    if crate::flex_kernels::fused_ops_apply(&logits.device(), logits.dtype()) {
        return crate::flex_kernels::cross_entropy(logits, labels);
    }
    decomposed_per_token_loss(logits, labels)
}

/// [`per_token_loss`] as burn's `log_softmax` and `gather`.
pub(crate) fn decomposed_per_token_loss(logits: Tensor<3>, labels: Tensor<2, Int>) -> Tensor<2> {
    let [b, n] = labels.dims();
    let v = logits.dims()[2];
    let logits = logits.slice([0..b, 0..n, 0..v]);
    let log_probs = log_softmax(logits, 2);
    log_probs
        .gather(2, labels.reshape([b, n, 1]))
        .reshape([b, n])
        .neg()
}

/// Mean cross-entropy over all `B·N` targets (a 1-element tensor): the training loss.
pub fn ar_loss(logits: Tensor<3>, labels: Tensor<2, Int>) -> Tensor<1> {
    per_token_loss(logits, labels).mean()
}

/// Fraction of the `B·N` targets whose arg-max logit equals the label (1-element tensor).
pub fn token_accuracy(logits: Tensor<3>, labels: Tensor<2, Int>) -> Tensor<1> {
    let [b, n] = labels.dims();
    // Arg-max over the whole (contiguous) logits, then drop the unused last position: slicing
    // the logits first makes a strided view that the arg-max copies (`B·N·V` values) first.
    let predicted = logits.argmax(2).slice([0..b, 0..n]).reshape([b, n]);
    predicted.equal(labels).float().mean()
}
