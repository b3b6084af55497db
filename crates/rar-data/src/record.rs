//! One training sample and the shape every sample of a dataset has.

use serde::{Deserialize, Serialize};

/// One sample: a class label and the token ids of one image (raster order over the token
/// grid).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenRecord {
    /// The class, in `0..num_classes`.
    pub class: u16,
    /// `tokens_per_record` token ids, each below `codebook_size`.
    pub tokens: Vec<u16>,
}

/// What every record of a dataset looks like: tokens per record `N`, codebook size `V` and
/// class count `K`. Its checks are the only range checks of the data pipeline: the readers
/// apply them as records are read, and a model is compared with the data through
/// [`Self::mismatches`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RecordSpec {
    /// Tokens per record `N` (256 for the official tokenizer's 16×16 grid).
    pub tokens_per_record: usize,
    /// Codebook size `V`: token ids are in `0..V` (at most 65 536, the ids are 16-bit).
    pub codebook_size: usize,
    /// Number of classes `K`: labels are in `0..K`.
    pub num_classes: usize,
}

impl RecordSpec {
    /// Why `label` is not a class of this data, if it is not.
    pub fn check_label(&self, label: u16) -> Result<(), String> {
        if usize::from(label) >= self.num_classes {
            return Err(format!(
                "label {label} but the data has {} classes",
                self.num_classes
            ));
        }
        Ok(())
    }

    /// Why `tokens` (one record) do not fit, if they do not: the count and the first id at
    /// or above the codebook size.
    pub fn check_tokens(&self, tokens: &[u16]) -> Result<(), String> {
        if tokens.len() != self.tokens_per_record {
            return Err(format!(
                "{} tokens, expected {}",
                tokens.len(),
                self.tokens_per_record
            ));
        }
        self.check_token_ids(tokens)
    }

    /// Why a run of token ids (any number of records) does not fit, if it does not.
    pub fn check_token_ids(&self, tokens: &[u16]) -> Result<(), String> {
        match tokens
            .iter()
            .find(|&&t| usize::from(t) >= self.codebook_size)
        {
            Some(t) => Err(format!(
                "token {t} is not below the codebook size {}",
                self.codebook_size
            )),
            None => Ok(()),
        }
    }

    /// Why `record` does not fit, if it does not.
    pub fn check(&self, record: &TokenRecord) -> Result<(), String> {
        self.check_label(record.class)?;
        self.check_tokens(&record.tokens)
    }

    /// Every way `other` (e.g. what a model was built for) differs from this data, as
    /// `"tokens per record 8 (the model's 16)"` entries; empty when they agree.
    pub fn mismatches(&self, other: &RecordSpec, whose: &str) -> Vec<String> {
        [
            (
                "tokens per record",
                self.tokens_per_record,
                other.tokens_per_record,
            ),
            ("codebook size", self.codebook_size, other.codebook_size),
            ("class count", self.num_classes, other.num_classes),
        ]
        .into_iter()
        .filter(|(_, a, b)| a != b)
        .map(|(what, a, b)| format!("{what} {a} ({whose} {b})"))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_name_the_value() {
        let spec = RecordSpec {
            tokens_per_record: 2,
            codebook_size: 4,
            num_classes: 3,
        };
        assert!(
            spec.check(&TokenRecord {
                class: 2,
                tokens: vec![0, 3]
            })
            .is_ok()
        );
        let label = spec.check_label(3).unwrap_err();
        assert!(
            label.contains("label 3") && label.contains("3 classes"),
            "{label}"
        );
        let token = spec.check_tokens(&[1, 4]).unwrap_err();
        assert!(
            token.contains("token 4 is not below the codebook size 4"),
            "{token}"
        );
        assert!(
            spec.check_tokens(&[1])
                .unwrap_err()
                .contains("1 tokens, expected 2")
        );
        let other = RecordSpec {
            num_classes: 10,
            ..spec
        };
        assert_eq!(
            spec.mismatches(&other, "the model's"),
            ["class count 3 (the model's 10)"]
        );
    }
}
