//! Conversions between 8-bit RGB images and `[B, 3, H, W]` float tensors, as the official
//! `scripts/pretokenization.py` (`ToTensor()`) and `sample_imagenet_rar.py` (the uint8 cast) do.

use burn::prelude::*;
use image::RgbImage;

use crate::error::{Result, VqError};

/// Stacks equally sized RGB images into a `[B, 3, H, W]` tensor in `[0, 1]`
/// (`ToTensor()`: `u8 as f32 / 255`, channels first, no normalisation).
pub fn images_to_tensor(images: &[RgbImage], device: &Device) -> Result<Tensor<4>> {
    let first = images
        .first()
        .ok_or_else(|| VqError::input("images", "no images given"))?;
    let (w, h) = first.dimensions();
    let (w, h) = (w as usize, h as usize);
    let mut data = Vec::with_capacity(images.len() * 3 * h * w);
    for (i, img) in images.iter().enumerate() {
        if img.dimensions() != first.dimensions() {
            return Err(VqError::input(
                "images",
                format!(
                    "image {i} is {:?}, but image 0 is {:?}: all must have one size",
                    img.dimensions(),
                    first.dimensions()
                ),
            ));
        }
        push_chw(img, &mut data);
    }
    Ok(Tensor::from_data(
        TensorData::new(data, [images.len(), 3, h, w]),
        device,
    ))
}

/// Appends one image as CHW floats in `[0, 1]`.
pub(crate) fn push_chw(img: &RgbImage, data: &mut Vec<f32>) {
    let raw = img.as_raw();
    for c in 0..3 {
        data.extend(raw.chunks_exact(3).map(|px| f32::from(px[c]) / 255.0));
    }
}

/// Converts `[B, 3, H, W]` images to 8-bit: clamp to `[0, 1]`, multiply by 255 and truncate
/// (`floor`, the reference's uint8 cast — not rounding, the official `sample_imagenet_rar.py`'s uint8 cast). Returns the
/// `[B, H, W, 3]` (HWC, RGB) bytes and their shape.
pub fn tensor_to_u8_hwc(images: Tensor<4>) -> Result<(Vec<u8>, [usize; 4])> {
    let [b, c, h, w] = images.dims();
    if c != 3 {
        return Err(VqError::input(
            "images",
            format!("expected [B, 3, H, W], got {:?}", images.dims()),
        ));
    }
    let values = images
        .permute([0, 2, 3, 1])
        .into_data()
        .try_into_vec_as::<f32>()
        .map_err(|e| VqError::input("images", format!("cannot read tensor: {e:?}")))?;
    // `as u8` truncates toward zero (and maps NaN to 0), matching `.to(torch.uint8)`.
    let bytes = values
        .into_iter()
        .map(|x| (x.clamp(0.0, 1.0) * 255.0) as u8)
        .collect();
    Ok((bytes, [b, h, w, 3]))
}

/// Converts `[B, 3, H, W]` images in `[0, 1]` to 8-bit RGB images (see
/// [`tensor_to_u8_hwc`] for the rounding rule).
pub fn tensor_to_images(images: Tensor<4>) -> Result<Vec<RgbImage>> {
    let (bytes, [b, h, w, _]) = tensor_to_u8_hwc(images)?;
    let per = h * w * 3;
    (0..b)
        .map(|i| {
            RgbImage::from_raw(w as u32, h as u32, bytes[i * per..(i + 1) * per].to_vec())
                .ok_or_else(|| VqError::input("images", "image buffer size mismatch"))
        })
        .collect()
}
