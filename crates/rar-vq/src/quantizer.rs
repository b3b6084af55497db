//! Nearest-code vector quantiser (the official `modeling/modules/maskgit_vqgan.py`).

use burn::nn::{Embedding, EmbeddingConfig};
use burn::prelude::*;

/// The codebook (`quantize.embedding.weight`, `[codebook_size, z_channels]`) and the
/// nearest-code search.
///
/// Distances are computed in the reference's expanded form
/// `‖z‖² + ‖e‖² − 2·z·e` (not `‖z − e‖²`), so the arg-min sees the same rounding pattern;
/// there is no normalisation, projection or post-quantisation convolution.
#[derive(Module, Debug)]
pub struct VectorQuantizer {
    /// The codebook, one row per code.
    pub embedding: Embedding,
}

impl VectorQuantizer {
    /// A codebook of `codebook_size` vectors of width `dim` (random until loaded).
    pub fn new(codebook_size: usize, dim: usize, device: &Device) -> Self {
        Self {
            embedding: EmbeddingConfig::new(codebook_size, dim).init(device),
        }
    }

    /// Number of codes.
    pub fn codebook_size(&self) -> usize {
        self.embedding.weight.lazy_shape()[0]
    }

    /// Width of each code.
    pub fn dim(&self) -> usize {
        self.embedding.weight.lazy_shape()[1]
    }

    /// Squared distances `[N, codebook_size]` between `vectors` `[N, dim]` and every code.
    pub fn distances(&self, vectors: Tensor<2>) -> Tensor<2> {
        let codes = self.embedding.weight.val();
        let [n_codes, _] = codes.dims();
        let z_sq = vectors.clone().square().sum_dim(1); // [N, 1]
        let e_sq = codes.clone().square().sum_dim(1).reshape([1, n_codes]); // [1, V]
        let dot = vectors.matmul(codes.transpose()); // [N, V]
        z_sq + e_sq - dot.mul_scalar(2.0)
    }

    /// Token ids `[B, h·w]` of latent `z` `[B, dim, h, w]`, row-major over the grid
    /// (token `t` ↔ row `t / w`, column `t % w`).
    pub fn encode(&self, z: Tensor<4>) -> Tensor<2, Int> {
        let [b, c, h, w] = z.dims();
        let flat = z.permute([0, 2, 3, 1]).reshape([b * h * w, c]);
        self.distances(flat).argmin(1).reshape([b, h * w])
    }

    /// Codebook lookup: ids `[B, h·w]` (row-major) → latent `[B, dim, h, w]`.
    ///
    /// Ids must lie in `[0, codebook_size)`; [`crate::Tokenizer::decode`] checks that.
    pub fn lookup(&self, ids: Tensor<2, Int>, h: usize, w: usize) -> Tensor<4> {
        let [b, n] = ids.dims();
        debug_assert_eq!(n, h * w);
        let codes = self.embedding.weight.val();
        let [_, c] = codes.dims();
        codes
            .select(0, ids.reshape([b * n]))
            .reshape([b, h, w, c])
            .permute([0, 3, 1, 2])
    }
}
