//! Writing the generator's weights.

use std::path::Path;

use crate::checkpoint::keys::checkpoint_naming;
use crate::error::Result;
use crate::model::Rar;

impl Rar {
    /// Saves the weights in burn's burnpack format (module paths, burn layout; the
    /// configuration as metadata `rar_config`). The file must end in `.bpk`; an existing file
    /// is replaced.
    pub fn save_burnpack(&self, path: impl AsRef<Path>) -> Result<()> {
        Ok(rar_weights::save_burnpack(
            self,
            path.as_ref(),
            &[("rar_config", self.config().to_string())],
        )?)
    }

    /// Saves the weights as SafeTensors with the reference's key names and PyTorch layout,
    /// loadable by the reference with `load_state_dict(strict=True)`.
    pub fn save_safetensors(&self, path: impl AsRef<Path>) -> Result<()> {
        Ok(rar_weights::save_safetensors(
            self,
            path.as_ref(),
            &checkpoint_naming(),
        )?)
    }
}
