//! The model size of the benchmark examples (`sample_bench`, `train_bench`).

use rar::core::rng::Xoshiro256PlusPlus;
use rar::data::RecordBatch;
use rar::model::RarConfig;

// (a plain comment: clap would show a doc comment as the program's description)
// The size of a randomly initialised RAR model to benchmark (`--hidden`, `--depth`, …).
//
// The defaults are the benchmark shape: C 256, D 4, H 8, I 1024, N 256, V 1024 and
// 1000 classes. The cost of a step does not depend on the weights' values, so random weights
// measure the same work as a trained model of this size.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct ModelShape {
    /// Hidden width C.
    #[arg(long, default_value_t = 256)]
    pub hidden: usize,
    /// Number of blocks.
    #[arg(long, default_value_t = 4)]
    pub depth: usize,
    /// Attention heads.
    #[arg(long, default_value_t = 8)]
    pub heads: usize,
    /// MLP width.
    #[arg(long, default_value_t = 1024)]
    pub mlp: usize,
    /// Image tokens N.
    #[arg(long, default_value_t = 256)]
    pub tokens: usize,
    /// Codebook size V.
    #[arg(long, default_value_t = 1024)]
    pub codebook: usize,
    /// Number of classes.
    #[arg(long, default_value_t = 1000)]
    pub classes: usize,
}

impl ModelShape {
    /// The model configuration of this shape (other fields at their defaults).
    pub fn config(&self) -> RarConfig {
        RarConfig::new(self.hidden, self.depth, self.heads, self.mlp)
            .with_image_seq_len(self.tokens)
            .with_codebook_size(self.codebook)
            .with_num_classes(self.classes)
    }
}

impl ModelShape {
    /// `batch` random records of this shape at stream positions `t·batch …` (seeded by
    /// `(seed, t)`).
    pub fn random_records(&self, batch: usize, seed: u64, t: u64) -> RecordBatch {
        let mut rng = Xoshiro256PlusPlus::for_stream(seed, &[1, t]);
        let mut below = |k: usize| rng.below(k as u64) as u16;
        RecordBatch {
            first_position: t * batch as u64,
            tokens: (0..batch * self.tokens)
                .map(|_| below(self.codebook))
                .collect(),
            labels: (0..batch).map(|_| below(self.classes)).collect(),
        }
    }
}

impl std::fmt::Display for ModelShape {
    /// `C 256 D 4 H 8 I 1024 N 256 V 1024 K 1000 (… M params)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "C {} D {} H {} I {} N {} V {} K {} ({:.2} M params)",
            self.hidden,
            self.depth,
            self.heads,
            self.mlp,
            self.tokens,
            self.codebook,
            self.classes,
            self.config().num_params() as f64 / 1e6
        )
    }
}
