//! Weight-file containers, told apart by extension.

use std::path::Path;

/// The container format of a weight file, judged from its extension (case-insensitive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    /// A PyTorch `torch.save` zip-pickle state dict: `.bin`, `.pt`, `.pth` (the released
    /// checkpoints). Reference key names and layouts.
    Pytorch,
    /// A `.safetensors` file with the reference key names and layouts.
    Safetensors,
    /// burn's burnpack format, `.bpk`: burn module paths and layouts.
    Burnpack,
}

impl WeightFormat {
    /// The format implied by `path`'s extension, or `None` for any other extension.
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "bin" | "pt" | "pth" => Some(Self::Pytorch),
            "safetensors" => Some(Self::Safetensors),
            "bpk" => Some(Self::Burnpack),
            _ => None,
        }
    }

    /// The extensions of this format, for messages (`".bin/.pt/.pth"`, …).
    pub fn extensions(self) -> &'static str {
        match self {
            Self::Pytorch => ".bin/.pt/.pth (PyTorch)",
            Self::Safetensors => ".safetensors",
            Self::Burnpack => ".bpk (burnpack)",
        }
    }

    /// Whether the file stores the reference's key names and PyTorch layouts (the released
    /// checkpoints' formats) rather than burn's module paths.
    pub fn uses_reference_naming(self) -> bool {
        !matches!(self, Self::Burnpack)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_map_to_formats() {
        let format = |p: &str| WeightFormat::from_path(Path::new(p));
        assert_eq!(format("rar_b.bin"), Some(WeightFormat::Pytorch));
        assert_eq!(format("x/model.PTH"), Some(WeightFormat::Pytorch));
        assert_eq!(format("a.pt"), Some(WeightFormat::Pytorch));
        assert_eq!(format("w.SafeTensors"), Some(WeightFormat::Safetensors));
        assert_eq!(format("model.bpk"), Some(WeightFormat::Burnpack));
        assert_eq!(format("model.onnx"), None);
        assert_eq!(format("model"), None);
        assert_eq!(format("bin"), None);
    }
}
