//! RAR's embedding-id space (paper §3.2; `modeling/rar.py`).
//!
//! One embedding table serves image codes and class conditions:
//!
//! ```text
//! id:     0 … V−1      V        V+1 … V+C     V+C+1
//! means:  image codes  mask id  class 0…C−1   "none" (dropped label / unconditional)
//! ```
//!
//! For ImageNet with the MaskGIT-VQGAN tokenizer (`V = 1024`, `C = 1000`) the table has 2026
//! rows, class `c` is id `1025 + c` and "none" is 2025. The mask id is inherited from MaskGIT
//! and never used by RAR. The output head predicts only the `V` image codes.

use crate::{CoreError, Result};
use serde::{Deserialize, Serialize};

/// The sizes that define RAR's token-id space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenSpace {
    /// Number of image codes `V` (the tokenizer's codebook size).
    pub codebook_size: usize,
    /// Number of classes `C`.
    pub num_classes: usize,
}

impl TokenSpace {
    /// ImageNet-1k with the MaskGIT-VQGAN tokenizer: `V = 1024`, `C = 1000`.
    pub const IMAGENET: Self = Self {
        codebook_size: 1024,
        num_classes: 1000,
    };

    /// A token space with `codebook_size` image codes and `num_classes` classes.
    pub fn new(codebook_size: usize, num_classes: usize) -> Self {
        Self {
            codebook_size,
            num_classes,
        }
    }

    /// Rows of the embedding table: `V + 1 + C + 1`.
    pub fn vocab_size(&self) -> usize {
        self.codebook_size + self.num_classes + 2
    }

    /// The (unused) mask id `V`.
    pub fn mask_id(&self) -> usize {
        self.codebook_size
    }

    /// The id of class `class` (`V + 1 + class`), or an error if `class ≥ C`.
    pub fn class_id(&self, class: usize) -> Result<usize> {
        if class >= self.num_classes {
            return Err(CoreError::IdOutOfRange(format!(
                "class {class} is not below the number of classes {}",
                self.num_classes
            )));
        }
        Ok(self.codebook_size + 1 + class)
    }

    /// The "none" id used for dropped labels and the unconditional branch of guidance.
    pub fn none_id(&self) -> usize {
        self.codebook_size + self.num_classes + 1
    }

    /// Whether `id` is an image code (`id < V`).
    pub fn is_image_code(&self, id: usize) -> bool {
        id < self.codebook_size
    }

    /// The condition id for an optional class (`None` → the "none" id).
    pub fn condition_id(&self, class: Option<usize>) -> Result<usize> {
        class.map_or(Ok(self.none_id()), |c| self.class_id(c))
    }
}

impl Default for TokenSpace {
    fn default() -> Self {
        Self::IMAGENET
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imagenet_ids() {
        let t = TokenSpace::IMAGENET;
        assert_eq!(t.vocab_size(), 2026);
        assert_eq!(t.mask_id(), 1024);
        assert_eq!(t.class_id(0).unwrap(), 1025);
        assert_eq!(t.class_id(999).unwrap(), 2024);
        assert_eq!(t.none_id(), 2025);
        assert!(t.class_id(1000).is_err());
        assert_eq!(t.condition_id(None).unwrap(), 2025);
        assert!(t.is_image_code(1023) && !t.is_image_code(1024));
    }
}
