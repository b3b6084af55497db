//! Telling weight-file formats apart by extension, shared by the model and tokenizer loaders
//! (rar-model's `CheckpointFormat`, rar-vq's `WeightsFormat`), which map it to the formats
//! they can read.

use std::path::Path;

/// The container format of a weight file, judged from its extension (case-insensitive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFileKind {
    /// A PyTorch `torch.save` zip-pickle: `.bin`, `.pt`, `.pth` (the released checkpoints).
    Pytorch,
    /// A `.safetensors` file.
    Safetensors,
    /// burn's burnpack format: `.bpk`.
    Burnpack,
}

impl WeightFileKind {
    /// The kind implied by `path`'s extension, or `None` for any other extension.
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "bin" | "pt" | "pth" => Some(Self::Pytorch),
            "safetensors" => Some(Self::Safetensors),
            "bpk" => Some(Self::Burnpack),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_map_to_kinds() {
        let kind = |p: &str| WeightFileKind::from_path(Path::new(p));
        assert_eq!(kind("rar_b.bin"), Some(WeightFileKind::Pytorch));
        assert_eq!(kind("x/model.PTH"), Some(WeightFileKind::Pytorch));
        assert_eq!(kind("a.pt"), Some(WeightFileKind::Pytorch));
        assert_eq!(kind("w.SafeTensors"), Some(WeightFileKind::Safetensors));
        assert_eq!(kind("model.bpk"), Some(WeightFileKind::Burnpack));
        assert_eq!(kind("model.onnx"), None);
        assert_eq!(kind("model"), None);
        assert_eq!(kind("bin"), None);
    }
}
