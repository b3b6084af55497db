//! Model configuration, the released presets and their parameter counts (the official `README_RAR.md`).
//!
//! [`RarConfig`] holds every size that shapes the network. The four released sizes are
//! available as [`RarPreset`]s, together with the sampling settings the authors recommend for
//! each (the official `README_RAR.md`). Any other size can be built from the config directly; the parameter count
//! ([`RarConfig::num_params`]) and the checkpoint layout ([`crate::checkpoint::expected_state_dict`])
//! follow from the config alone, without allocating a single weight.

use std::path::Path;

use burn::config::Config;
use rar_core::TokenSpace;
use serde::{Deserialize, Serialize};

use crate::error::RarModelError;

/// Result alias used here (the `Config` derive refers to a bare `Result`, so the crate's alias is
/// not imported under that name).
type ModelResult<T> = std::result::Result<T, RarModelError>;

/// Rows of `pos_embed` and `target_aware_pos_embed` beyond the `N` image tokens.
///
/// The reference sizes both tables `N + 1024` although only the first `N + 2` rows are ever
/// read (the official `modeling/rar.py`); the unused rows must still exist for strict checkpoint loading.
pub const POS_EMBED_EXTRA_ROWS: usize = 1024;

/// Rows of `timesteps_embeddings` beyond the `N` image tokens (`N + 100` in total, the official `modeling/rar.py`).
pub const TIMESTEP_EXTRA_ROWS: usize = 100;

/// Configuration of a RAR generator (the reference's `model.generator` YAML section plus the
/// tokenizer's codebook size, the official `configs/training/generator/rar.yaml`).
#[derive(Config, Debug, PartialEq)]
pub struct RarConfig {
    /// Hidden width `C` (`hidden_size`).
    pub hidden_size: usize,
    /// Number of transformer blocks `D` (`num_hidden_layers`).
    pub num_layers: usize,
    /// Number of attention heads `H` (`num_attention_heads`); must divide `hidden_size`.
    pub num_heads: usize,
    /// MLP hidden width `I` (`intermediate_size`).
    pub intermediate_size: usize,
    /// Number of image tokens `N` per image (`image_seq_len`; 256 for a 16×16 grid).
    #[config(default = 256)]
    pub image_seq_len: usize,
    /// Number of image codes `V` (the tokenizer's `codebook_size`); the head predicts these.
    #[config(default = 1024)]
    pub codebook_size: usize,
    /// Number of classes `K` (`condition_num_classes`).
    #[config(default = 1000)]
    pub num_classes: usize,
    /// Dropout after the attention projection and inside the MLP (training only, `dropout`).
    #[config(default = 0.1)]
    pub dropout: f64,
    /// Dropout on the attention probabilities (training only, `attn_drop`).
    #[config(default = 0.1)]
    pub attn_drop: f64,
    /// Per-sample probability of replacing the class by the "none" id in training
    /// (`class_label_dropout`, the official `modeling/rar.py`). The forward pass itself does not apply it: see
    /// [`crate::condition::drop_class_labels`].
    #[config(default = 0.1)]
    pub class_label_dropout: f64,
    /// Epsilon of every LayerNorm (block norms, QK-norm, final norm). The reference uses 1e-6
    /// everywhere; burn's own default (1e-5) would be wrong here.
    #[config(default = 1e-6)]
    pub layer_norm_eps: f64,
}

/// The four released RAR sizes (the official `README_RAR.md`; all use 16 heads, `N = 256`, `V = 1024`,
/// `K = 1000`; the MLP width is `4C` except for RAR-XXL's 6144).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RarPreset {
    /// RAR-B: 768 wide, 24 blocks, 260,923,648 parameters.
    B,
    /// RAR-L: 1024 wide, 24 blocks, 461,668,352 parameters.
    L,
    /// RAR-XL: 1280 wide, 32 blocks, 955,425,024 parameters.
    XL,
    /// RAR-XXL: 1408 wide, 40 blocks, MLP 6144, 1,498,520,704 parameters.
    XXL,
}

impl RarPreset {
    /// All presets, smallest first.
    pub const ALL: [RarPreset; 4] = [RarPreset::B, RarPreset::L, RarPreset::XL, RarPreset::XXL];

    /// The preset's name as used by the reference (`"RAR-B"`, …).
    pub fn name(self) -> &'static str {
        match self {
            RarPreset::B => "RAR-B",
            RarPreset::L => "RAR-L",
            RarPreset::XL => "RAR-XL",
            RarPreset::XXL => "RAR-XXL",
        }
    }

    /// The released checkpoint's file name on the hub (`rar_b.bin`, … in `yucornetto/RAR`).
    pub fn checkpoint_file(self) -> &'static str {
        match self {
            RarPreset::B => "rar_b.bin",
            RarPreset::L => "rar_l.bin",
            RarPreset::XL => "rar_xl.bin",
            RarPreset::XXL => "rar_xxl.bin",
        }
    }

    /// Parses `b`, `rar-b`, `RAR_XL`, … (case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        let n = name.trim().to_ascii_lowercase().replace('_', "-");
        let n = n.strip_prefix("rar-").unwrap_or(&n);
        match n {
            "b" => Some(RarPreset::B),
            "l" => Some(RarPreset::L),
            "xl" => Some(RarPreset::XL),
            "xxl" => Some(RarPreset::XXL),
            _ => None,
        }
    }

    /// The model configuration (training dropouts as in `rar.yaml`: 0.1 / 0.1 / 0.1).
    pub fn config(self) -> RarConfig {
        // (C, D, I): note RAR-XXL's MLP is 6144 wide, not 4C = 5632 (the official `modeling/rar.py`).
        let (c, d, i) = match self {
            RarPreset::B => (768, 24, 3072),
            RarPreset::L => (1024, 24, 4096),
            RarPreset::XL => (1280, 32, 5120),
            RarPreset::XXL => (1408, 40, 6144),
        };
        RarConfig::new(c, d, 16, i)
    }

    /// The preset whose architecture equals `config` (dropouts and epsilon are ignored).
    pub fn matching(config: &RarConfig) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.config().same_architecture(config))
    }
}

impl std::fmt::Display for RarPreset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl RarConfig {
    /// The configuration of a released preset.
    pub fn preset(preset: RarPreset) -> Self {
        preset.config()
    }

    /// Per-head width `d = C / H`.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads.max(1)
    }

    /// The token-id space (`V` codes, mask id, `K` classes, "none"; paper §3.2; `modeling/rar.py`).
    pub fn token_space(&self) -> TokenSpace {
        TokenSpace::new(self.codebook_size, self.num_classes)
    }

    /// Rows of the shared embedding table, `V + 1 + K + 1`.
    pub fn vocab_size(&self) -> usize {
        self.token_space().vocab_size()
    }

    /// Rows of `pos_embed` / `target_aware_pos_embed`: `N + 1024`.
    pub fn pos_embed_rows(&self) -> usize {
        self.image_seq_len + POS_EMBED_EXTRA_ROWS
    }

    /// Rows of `timesteps_embeddings`: `N + 100`.
    pub fn timestep_rows(&self) -> usize {
        self.image_seq_len + TIMESTEP_EXTRA_ROWS
    }

    /// Length of the full training sequence, `N + 2` (`cls`, class token, `N` tokens).
    pub fn seq_len(&self) -> usize {
        self.image_seq_len + rar_core::target::PREFIX_SLOTS
    }

    /// Whether two configs describe the same network shapes (training-only settings ignored).
    pub fn same_architecture(&self, other: &RarConfig) -> bool {
        self.hidden_size == other.hidden_size
            && self.num_layers == other.num_layers
            && self.num_heads == other.num_heads
            && self.intermediate_size == other.intermediate_size
            && self.image_seq_len == other.image_seq_len
            && self.codebook_size == other.codebook_size
            && self.num_classes == other.num_classes
    }

    /// Checks that the sizes can build a network: all positive, `H` divides `C`, dropout
    /// probabilities in `[0, 1)`, a positive finite epsilon.
    pub fn validate(&self) -> ModelResult<()> {
        let bad = |msg: String| Err(RarModelError::InvalidConfig(msg));
        for (name, value) in [
            ("hidden_size", self.hidden_size),
            ("num_layers", self.num_layers),
            ("num_heads", self.num_heads),
            ("intermediate_size", self.intermediate_size),
            ("image_seq_len", self.image_seq_len),
            ("codebook_size", self.codebook_size),
            ("num_classes", self.num_classes),
        ] {
            if value == 0 {
                return bad(format!("{name} must be positive"));
            }
        }
        if !self.hidden_size.is_multiple_of(self.num_heads) {
            return bad(format!(
                "hidden_size {} is not divisible by num_heads {}",
                self.hidden_size, self.num_heads
            ));
        }
        for (name, p) in [
            ("dropout", self.dropout),
            ("attn_drop", self.attn_drop),
            ("class_label_dropout", self.class_label_dropout),
        ] {
            if !(0.0..1.0).contains(&p) {
                return bad(format!("{name} must be in [0, 1), got {p}"));
            }
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            return bad(format!(
                "layer_norm_eps must be positive and finite, got {}",
                self.layer_norm_eps
            ));
        }
        Ok(())
    }

    /// Number of parameters, computed from the sizes alone (the official `modeling/rar.py`):
    ///
    /// `D·(10C² + 2CI + 15C + I + 4d) + C·(1 + vocab + 2·(N+1024) + N+100) + 2C² + 2C + V·C + V`
    ///
    /// It counts exactly the tensors of the reference `state_dict`.
    pub fn num_params(&self) -> usize {
        let c = self.hidden_size;
        let i = self.intermediate_size;
        let d = self.head_dim();
        let v = self.codebook_size;
        let per_block = 10 * c * c + 2 * c * i + 15 * c + i + 4 * d;
        self.num_layers * per_block
            + c * (1 + self.vocab_size() + 2 * self.pos_embed_rows() + self.timestep_rows())
            + 2 * c * c
            + 2 * c
            + v * c
            + v
    }

    /// Reads the reference's OmegaConf-style JSON (`{"model": {"generator": {…}, "vq_model":
    /// {"codebook_size": …}}}`, as in the parity fixtures' `config.json`).
    pub fn from_reference_json(path: impl AsRef<Path>) -> ModelResult<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| RarModelError::ConfigFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Self::from_reference_json_str(&text).map_err(|reason| RarModelError::ConfigFile {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// Parses the reference's JSON config from a string (see [`Self::from_reference_json`]).
    /// The error is a message naming the missing or malformed key.
    pub fn from_reference_json_str(text: &str) -> std::result::Result<Self, String> {
        let root: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
        let generator = root
            .pointer("/model/generator")
            .ok_or("missing key model.generator")?;
        let int = |section: &serde_json::Value, prefix: &str, key: &str| {
            section
                .get(key)
                .and_then(serde_json::Value::as_u64)
                .map(|v| v as usize)
                .ok_or(format!("missing or non-integer key {prefix}.{key}"))
        };
        let float = |key: &str, default: f64| -> std::result::Result<f64, String> {
            match generator.get(key) {
                None => Ok(default),
                Some(v) => v
                    .as_f64()
                    .ok_or(format!("key model.generator.{key} is not a number")),
            }
        };
        let vq = root
            .pointer("/model/vq_model")
            .ok_or("missing key model.vq_model")?;
        let g = "model.generator";
        let config = RarConfig::new(
            int(generator, g, "hidden_size")?,
            int(generator, g, "num_hidden_layers")?,
            int(generator, g, "num_attention_heads")?,
            int(generator, g, "intermediate_size")?,
        )
        .with_image_seq_len(int(generator, g, "image_seq_len")?)
        .with_num_classes(int(generator, g, "condition_num_classes")?)
        .with_codebook_size(int(vq, "model.vq_model", "codebook_size")?)
        .with_dropout(float("dropout", 0.1)?)
        .with_attn_drop(float("attn_drop", 0.1)?)
        .with_class_label_dropout(float("class_label_dropout", 0.1)?);
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preset_parameter_counts_match_the_reference() {
        // Values computed by the reference on PyTorch's meta device (the official `README_RAR.md` sizes).
        let expected = [
            (RarPreset::B, 260_923_648usize),
            (RarPreset::L, 461_668_352),
            (RarPreset::XL, 955_425_024),
            (RarPreset::XXL, 1_498_520_704),
        ];
        for (preset, count) in expected {
            assert_eq!(preset.config().num_params(), count, "{preset}");
        }
    }

    #[test]
    fn preset_names_round_trip() {
        for p in RarPreset::ALL {
            assert_eq!(RarPreset::from_name(p.name()), Some(p));
            assert_eq!(RarPreset::matching(&p.config()), Some(p));
        }
        assert_eq!(RarPreset::from_name("xl"), Some(RarPreset::XL));
        assert_eq!(RarPreset::from_name("rar_xxl"), Some(RarPreset::XXL));
        assert_eq!(RarPreset::from_name("s"), None);
    }

    #[test]
    fn invalid_configs_are_rejected() {
        assert!(RarConfig::new(64, 2, 5, 256).validate().is_err());
        assert!(RarConfig::new(0, 2, 4, 256).validate().is_err());
        assert!(
            RarConfig::new(64, 2, 4, 256)
                .with_dropout(1.0)
                .validate()
                .is_err()
        );
        assert!(
            RarConfig::new(64, 2, 4, 256)
                .with_layer_norm_eps(0.0)
                .validate()
                .is_err()
        );
        assert!(RarConfig::new(64, 2, 4, 256).validate().is_ok());
    }

    #[test]
    fn reference_json_errors_name_the_key() {
        let err = RarConfig::from_reference_json_str(r#"{"model": {"vq_model": {}}}"#).unwrap_err();
        assert!(err.contains("model.generator"), "{err}");
        let err = RarConfig::from_reference_json_str(
            r#"{"model": {"generator": {"hidden_size": 64}, "vq_model": {"codebook_size": 8}}}"#,
        )
        .unwrap_err();
        assert!(err.contains("num_hidden_layers"), "{err}");
        assert!(RarConfig::from_reference_json_str("{").is_err());
    }
}
