//! The tokenizer as rar-data's pretokenization encoder.

use image::RgbImage;
use rar_data::CropEncoder;

use crate::convert::images_to_tensor;
use crate::tokenizer::Tokenizer;

impl CropEncoder for Tokenizer {
    fn codebook_size(&self) -> usize {
        Tokenizer::codebook_size(self)
    }

    fn downsample_factor(&self) -> usize {
        Tokenizer::downsample_factor(self)
    }

    /// `ToTensor()` of each crop (`[0, 1]`, channels first) on the tokenizer's device, then
    /// [`Tokenizer::encode`].
    fn encode_crops(
        &self,
        crops: &[RgbImage],
    ) -> Result<Vec<i64>, Box<dyn std::error::Error + Send + Sync>> {
        let images = images_to_tensor(crops, &self.device())?;
        let ids = self.encode(images)?;
        Ok(ids
            .into_data()
            .try_into_vec_as::<i64>()
            .map_err(|e| format!("cannot read the token ids: {e:?}"))?)
    }
}
