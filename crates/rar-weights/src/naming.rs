//! How module paths correspond to the keys of the reference's files.

use burn::store::KeyRemapper;

use crate::params::ModuleParam;

/// The correspondence between a module's parameter paths and the keys of the reference's
/// checkpoints: one table of renamed path segments, used in both directions — when loading
/// (file key → module path), when saving (module path → file key) and when an error names a
/// parameter. Normalisation layers' `weight`/`bias` ⇄ `gamma`/`beta` needs no entry: it
/// follows from the module type (see [`ModuleParam::is_norm_affine`]).
///
/// A segment is a dotted run of whole path components (`adaLN_modulation.1`), replaced where
/// it starts the path or follows a `.`, and ends it or precedes a `.`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Naming {
    /// `(file segment, module segment)` pairs.
    renames: Vec<(String, String)>,
    /// Whether numeric path components are renumbered contiguously when reading a PyTorch
    /// file (burn-store's default). Off keeps indices as stored, e.g. the `1` of a
    /// `Sequential(SiLU, Linear)` whose `Linear` is a single module here.
    contiguous_indices: bool,
}

impl Naming {
    /// The identity naming (burn-store's contiguous index mapping on).
    pub fn new() -> Self {
        Self {
            renames: Vec::new(),
            contiguous_indices: true,
        }
    }

    /// Adds a segment rename: `file` in the reference's keys is `module` in module paths.
    /// Segments hold ASCII letters, digits, `_` and `.` only.
    pub fn rename(mut self, file: &str, module: &str) -> Self {
        self.renames.push((file.to_string(), module.to_string()));
        self
    }

    /// Keeps numeric path components as stored in PyTorch files (see the field docs).
    pub fn keep_indices(mut self) -> Self {
        self.contiguous_indices = false;
        self
    }

    /// Whether PyTorch files are read with contiguous index renumbering.
    pub fn contiguous_indices(&self) -> bool {
        self.contiguous_indices
    }

    /// The module path of a file key (segment renames only; norm parameters keep their
    /// PyTorch names, which burn-store's adapter resolves from the module type).
    pub fn to_module(&self, key: &str) -> String {
        self.renames
            .iter()
            .fold(key.to_string(), |k, (file, module)| {
                replace_segment(&k, file, module)
            })
    }

    /// The file key of a module parameter: the norm rename by module type, then the segment
    /// renames backwards.
    pub fn to_file(&self, param: &ModuleParam) -> String {
        let path = if param.is_norm_affine() {
            let (parent, name) = param.path.rsplit_once('.').unwrap_or(("", &param.path));
            let name = if name == "gamma" { "weight" } else { "bias" };
            if parent.is_empty() {
                name.to_string()
            } else {
                format!("{parent}.{name}")
            }
        } else {
            param.path.clone()
        };
        self.renames
            .iter()
            .fold(path, |k, (file, module)| replace_segment(&k, module, file))
    }

    /// burn-store's remapper for writing files in the reference's naming (module → file).
    pub(crate) fn save_remapper(&self) -> KeyRemapper {
        let patterns = self
            .renames
            .iter()
            .map(|(file, module)| (segment_regex(module), format!("${{1}}{file}${{2}}")));
        KeyRemapper::from_pattern_iter(patterns)
            .expect("segments of letters, digits, '_' and '.' form valid patterns")
    }
}

/// A regex matching `segment` as whole path components, capturing the separators.
fn segment_regex(segment: &str) -> String {
    format!(r"(^|\.){}(\.|$)", segment.replace('.', r"\."))
}

/// Replaces whole-component occurrences of `from` in the dotted `path` by `to`.
fn replace_segment(path: &str, from: &str, to: &str) -> String {
    let wrapped = format!(".{path}.");
    let replaced = wrapped.replace(&format!(".{from}."), &format!(".{to}."));
    replaced[1..replaced.len() - 1].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(path: &str, module_type: &str) -> ModuleParam {
        ModuleParam {
            path: path.into(),
            shape: vec![4, 4],
            module_type: module_type.into(),
        }
    }

    #[test]
    fn segments_rename_both_ways_and_only_as_whole_components() {
        let naming = Naming::new().rename("adaLN_modulation.1", "ada_ln_modulation");
        let key = "blocks.3.adaLN_modulation.1.weight";
        assert_eq!(naming.to_module(key), "blocks.3.ada_ln_modulation.weight");
        assert_eq!(
            naming.to_module("adaLN_modulation.1.bias"),
            "ada_ln_modulation.bias"
        );
        assert_eq!(
            naming.to_module("xadaLN_modulation.1.bias"),
            "xadaLN_modulation.1.bias"
        );
        let p = param("blocks.3.ada_ln_modulation.weight", "Struct:Linear");
        assert_eq!(naming.to_file(&p), key);
        assert!(p.is_transposed());
        let norm = param("blocks.0.attn.q_norm.gamma", "Struct:LayerNorm");
        assert_eq!(naming.to_file(&norm), "blocks.0.attn.q_norm.weight");
        let beta = param("norm_out.beta", "Struct:GroupNorm");
        assert_eq!(naming.to_file(&beta), "norm_out.bias");
        assert_eq!(
            naming.to_file(&param("cls_token", "Struct:Rar")),
            "cls_token"
        );
    }

    #[test]
    fn the_save_remapper_is_the_table_backwards() {
        let naming = Naming::new().rename("adaLN_modulation.1", "ada_ln_modulation");
        let pairs = naming.save_remapper().to_regex_pairs();
        assert_eq!(pairs.len(), 1);
        let (re, to) = &pairs[0];
        assert_eq!(
            re.replace("blocks.0.ada_ln_modulation.bias", to.as_str()),
            "blocks.0.adaLN_modulation.1.bias"
        );
    }
}
