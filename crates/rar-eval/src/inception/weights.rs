//! Loading the published Inception weights unchanged: torch-fidelity's
//! `weights-inception-2015-12-05-6726825d.pth` and pytorch-fid's
//! `pt_inception-2015-12-05-6726825d.pth` (both converted from the TensorFlow graph, with the
//! same keys), or a `.safetensors` with those keys.
//!
//! Loading is strict: every parameter must be present with its shape and no other key may
//! exist, except BatchNorm's integer `num_batches_tracked` counters, which PyTorch writes and
//! inference never reads. The checks run on the file's index before anything is applied, and
//! each error names the file and the key.

use std::path::Path;

use burn::prelude::*;
use rar_weights::{
    DTypeRule, Naming, WeightFile, WeightFormat, module_parameters, save_safetensors,
};

use super::network::{InceptionV3, InceptionV3Config};
use crate::error::Result;

/// The formats the network is loaded from.
const FORMATS: [WeightFormat; 2] = [WeightFormat::Pytorch, WeightFormat::Safetensors];

/// The top-level modules whose PyTorch names are not snake case.
const RENAMED: [&str; 16] = [
    "Conv2d_1a_3x3",
    "Conv2d_2a_3x3",
    "Conv2d_2b_3x3",
    "Conv2d_3b_1x1",
    "Conv2d_4a_3x3",
    "Mixed_5b",
    "Mixed_5c",
    "Mixed_5d",
    "Mixed_6a",
    "Mixed_6b",
    "Mixed_6c",
    "Mixed_6d",
    "Mixed_6e",
    "Mixed_7a",
    "Mixed_7b",
    "Mixed_7c",
];

/// PyTorch bookkeeping that no parameter corresponds to.
fn is_bookkeeping(key: &str) -> bool {
    key.ends_with(".num_batches_tracked")
}

/// The mapping between the ports' keys and this crate's module paths.
pub(crate) fn naming() -> Naming {
    RENAMED
        .iter()
        .fold(Naming::new(), |n, key| n.rename(key, &key.to_lowercase()))
}

impl InceptionV3 {
    /// Loads the network from `path` (`.pth`/`.pt`/`.bin` state dict or `.safetensors`) onto
    /// `device`, checking every key and shape first.
    pub fn from_file(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let naming = naming();
        let mut file = WeightFile::open(path, &FORMATS, &naming)?;
        file.skip_keys(is_bookkeeping);
        let model = InceptionV3Config::new().init(device);
        file.check(&file.layout_of(&model, &naming), DTypeRule::AnyFloat)?;
        Ok(file.load_into(model, &naming)?)
    }

    /// Writes the network as `.safetensors` with the ports' keys and PyTorch layouts, which
    /// [`InceptionV3::from_file`] (and `safetensors.torch.load_file` into torch-fidelity's
    /// module) reads back; a `.pth` converted once this way loads without unpickling.
    pub fn save_safetensors(&self, path: impl AsRef<Path>) -> Result<()> {
        Ok(save_safetensors(self, path.as_ref(), &naming())?)
    }

    /// The keys and PyTorch shapes a weight file must hold for `config`, in module order
    /// (BatchNorm's `num_batches_tracked` aside).
    /// Nothing is allocated on `device`: burn initialises parameters lazily.
    pub fn state_dict_layout(
        config: &InceptionV3Config,
        device: &Device,
    ) -> Vec<(String, Vec<usize>)> {
        let naming = naming();
        let model = config.init(device);
        module_parameters(&model)
            .into_iter()
            .map(|p| (naming.to_file(&p), p.reference_shape()))
            .collect()
    }
}
