//! The RAR transformer on burn (spec §3): configs and presets, the training-mode forward with
//! per-sample token orders and target-aware positional embeddings, KV-cached incremental
//! decoding, and loading of the official PyTorch checkpoints.
#![warn(missing_docs)]
