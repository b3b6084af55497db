//! The configuration of a checkpoint, read off its shapes.

use std::collections::BTreeMap;

use crate::config::{POS_EMBED_EXTRA_ROWS, RarConfig, TIMESTEP_EXTRA_ROWS};

/// Infers the configuration from a checkpoint's shapes (reference key names).
///
/// Reads `C` from `cls_token`, `D` from the largest block index, `I` from `mlp.fc1.bias`, `d` (and
/// so `H = C / d`) from the QK-norm, `V` from `lm_head.bias`, `K` from the embedding rows and
/// `N` from the positional tables, which must agree. Only shapes that PyTorch and burn lay out
/// alike are read, so burnpack files (burn layout) are inferred the same way, and a
/// mis-shaped Linear weight is reported against the inferred configuration rather than
/// mistaken for it. Training-only settings keep the reference defaults.
pub fn infer_config(
    shapes: &BTreeMap<String, Vec<usize>>,
) -> std::result::Result<RarConfig, String> {
    let get = |key: &str, rank: usize| -> std::result::Result<&Vec<usize>, String> {
        let shape = shapes.get(key).ok_or(format!("no tensor '{key}'"))?;
        if shape.len() != rank {
            return Err(format!("'{key}' has shape {shape:?}, expected rank {rank}"));
        }
        Ok(shape)
    };
    let c = get("cls_token", 3)?[2];
    // The depth from the largest block index of any key, so that a block missing one of its
    // tensors is reported as that tensor missing, not as the rest of the model unexpected.
    let depth = shapes
        .keys()
        .filter_map(|k| {
            k.strip_prefix("blocks.")?
                .split('.')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .max()
        .map_or(0, |last| last + 1);
    if depth == 0 {
        return Err("no 'blocks.0.*' tensors: not a RAR generator checkpoint".into());
    }
    let intermediate = get("blocks.0.mlp.fc1.bias", 1)?[0];
    let head_dim = get("blocks.0.attn.q_norm.weight", 1)?[0];
    if head_dim == 0 || !c.is_multiple_of(head_dim) {
        return Err(format!(
            "QK-norm width {head_dim} does not divide hidden size {c}"
        ));
    }
    let codebook = get("lm_head.bias", 1)?[0];
    let rows = get("embeddings.weight", 2)?[0];
    if rows < codebook + 3 {
        return Err(format!(
            "embedding table has {rows} rows, fewer than codebook {codebook} + mask + 1 class + none"
        ));
    }
    let pos_rows = get("pos_embed", 3)?[1];
    let time_rows = get("timesteps_embeddings", 3)?[1];
    if pos_rows <= POS_EMBED_EXTRA_ROWS || time_rows <= TIMESTEP_EXTRA_ROWS {
        return Err(format!(
            "positional tables too short: pos_embed {pos_rows} rows, timesteps_embeddings {time_rows} rows"
        ));
    }
    let n = pos_rows - POS_EMBED_EXTRA_ROWS;
    if time_rows - TIMESTEP_EXTRA_ROWS != n {
        return Err(format!(
            "pos_embed ({pos_rows} rows → N = {n}) and timesteps_embeddings ({time_rows} rows → N = {}) disagree",
            time_rows - TIMESTEP_EXTRA_ROWS
        ));
    }
    let config = RarConfig::new(c, depth, c / head_dim, intermediate)
        .with_image_seq_len(n)
        .with_codebook_size(codebook)
        .with_num_classes(rows - codebook - 2);
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}
