//! Tokens → pictures: the toy palette or the VQ tokenizer's decoder, partial images with the
//! tokens not yet drawn shown grey, grids, and PNG bytes.

use std::io::Cursor;
use std::sync::{Mutex, PoisonError};

use image::{ImageFormat, RgbImage};
use rar_data::render_rgb;
use rar_vq::Tokenizer;

/// The colour of tokens not generated yet in a partial image.
pub const PENDING_GREY: [u8; 3] = [136, 136, 136];

/// How token grids become images.
pub enum Renderer {
    /// Each token is one palette colour (the embedded toy dataset), a `scale × scale` block.
    Palette {
        /// Tokens per side of the square grid.
        side: usize,
        /// Pixels per token.
        scale: usize,
    },
    /// The VQ tokenizer's decoder (16 × 16 tokens → 256 × 256 pixels for MaskGIT-VQGAN).
    /// Behind a lock: one decode at a time, the tensors are not shared between threads.
    Tokenizer(Box<Mutex<Tokenizer>>),
}

/// Why tokens could not be rendered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RenderError {
    /// The decoder refused the tokens.
    #[error("decoding tokens: {0}")]
    Decode(String),
    /// The grid or PNG could not be made.
    #[error("encoding the image: {0}")]
    Encode(String),
}

impl Renderer {
    /// The palette renderer of a square grid of `num_tokens` tokens, `scale` pixels each.
    pub fn palette(num_tokens: usize, scale: usize) -> Self {
        Self::Palette {
            side: num_tokens.isqrt(),
            scale: scale.max(1),
        }
    }

    /// The tokenizer's decoder.
    pub fn tokenizer(tokenizer: Tokenizer) -> Self {
        Self::Tokenizer(Box::new(Mutex::new(tokenizer)))
    }

    /// One RGB image per row of raster-order tokens. Rows shorter than `num_tokens` (a job in
    /// progress) are completed with token 0 for the decoder and then painted
    /// [`PENDING_GREY`] where the tokens are still missing.
    pub fn render(
        &self,
        rows: &[Vec<u32>],
        num_tokens: usize,
    ) -> Result<Vec<RgbImage>, RenderError> {
        let side = num_tokens.isqrt();
        if side * side != num_tokens || num_tokens == 0 {
            return Err(RenderError::Decode(format!(
                "{num_tokens} tokens per image is not a square grid"
            )));
        }
        let mut images = match self {
            // `render_rgb` draws missing tokens as token 0.
            Self::Palette { scale, .. } => rows
                .iter()
                .map(|r| {
                    let px = (side * scale) as u32;
                    RgbImage::from_raw(px, px, render_rgb(r, side, *scale))
                        .ok_or_else(|| RenderError::Encode("palette buffer size".into()))
                })
                .collect::<Result<Vec<_>, _>>()?,
            Self::Tokenizer(tokenizer) => {
                let mut flat = Vec::with_capacity(rows.len() * num_tokens);
                for r in rows {
                    flat.extend_from_slice(&r[..r.len().min(num_tokens)]);
                    flat.resize(flat.len() + num_tokens.saturating_sub(r.len()), 0);
                }
                tokenizer
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .decode_tokens_to_images(&flat, num_tokens)
                    .map_err(|e| RenderError::Decode(e.to_string()))?
            }
        };
        for (image, row) in images.iter_mut().zip(rows) {
            paint_pending(image, side, row.len());
        }
        Ok(images)
    }
}

/// Paints the blocks of tokens `drawn..` of a `side × side` raster grey.
fn paint_pending(image: &mut RgbImage, side: usize, drawn: usize) {
    let (w, h) = image.dimensions();
    let (bw, bh) = (w as usize / side, h as usize / side);
    for t in drawn..side * side {
        let (by, bx) = (t / side, t % side);
        for y in by * bh..(by + 1) * bh {
            for x in bx * bw..(bx + 1) * bw {
                image.put_pixel(x as u32, y as u32, image::Rgb(PENDING_GREY));
            }
        }
    }
}

/// Pixels between the cells of a grid.
pub const GRID_GAP: u32 = 4;

/// The colour between the cells of a grid.
pub const GRID_BACKGROUND: [u8; 3] = [255, 255, 255];

/// Tiles equally sized images row-major into a grid of `columns` columns, [`GRID_GAP`]
/// pixels of [`GRID_BACKGROUND`] between the cells (none around them).
pub fn grid(images: &[RgbImage], columns: usize) -> Result<RgbImage, RenderError> {
    let first = images
        .first()
        .ok_or_else(|| RenderError::Encode("no images to tile".into()))?;
    let (w, h) = first.dimensions();
    if let Some(i) = images.iter().position(|im| im.dimensions() != (w, h)) {
        return Err(RenderError::Encode(format!(
            "image {i} is {:?}, image 0 is {:?}",
            images[i].dimensions(),
            (w, h)
        )));
    }
    let columns = columns.clamp(1, images.len()) as u32;
    let rows = images.len().div_ceil(columns as usize) as u32;
    let extent = |n: u32, cell: u32| n * cell + (n - 1) * GRID_GAP;
    let mut out = RgbImage::from_pixel(
        extent(columns, w),
        extent(rows, h),
        image::Rgb(GRID_BACKGROUND),
    );
    for (i, image) in images.iter().enumerate() {
        let (c, r) = (i as u32 % columns, i as u32 / columns);
        let (x, y) = (c * (w + GRID_GAP), r * (h + GRID_GAP));
        image::imageops::replace(&mut out, image, i64::from(x), i64::from(y));
    }
    Ok(out)
}

/// The PNG bytes of an image.
pub fn png_bytes(image: &RgbImage) -> Result<Vec<u8>, RenderError> {
    let mut out = Cursor::new(Vec::new());
    image
        .write_to(&mut out, ImageFormat::Png)
        .map_err(|e| RenderError::Encode(e.to_string()))?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rar_data::toy::PALETTE;

    #[test]
    fn partial_palette_images_are_grey_past_the_drawn_tokens() {
        let renderer = Renderer::palette(16, 2);
        let rows = vec![vec![1u32; 16], vec![2u32, 3]];
        let images = renderer.render(&rows, 16).unwrap();
        assert_eq!(images[0].dimensions(), (8, 8));
        assert!(images[0].pixels().all(|p| p.0 == PALETTE[1]));
        // Row 1: token 0 (pixels 0–1 of the first two rows) and token 1, then grey.
        assert_eq!(images[1].get_pixel(0, 0).0, PALETTE[2]);
        assert_eq!(images[1].get_pixel(3, 1).0, PALETTE[3]);
        assert_eq!(images[1].get_pixel(4, 0).0, PENDING_GREY);
        assert_eq!(images[1].get_pixel(0, 7).0, PENDING_GREY);
        let grid = grid(&images, 2).unwrap();
        assert_eq!(grid.dimensions(), (16 + GRID_GAP, 8));
        assert_eq!(grid.get_pixel(8, 0).0, GRID_BACKGROUND);
        assert_eq!(grid.get_pixel(8 + GRID_GAP, 0).0, PALETTE[2]);
        let png = png_bytes(&grid).unwrap();
        let back = image::load_from_memory(&png).unwrap().to_rgb8();
        assert_eq!(back, grid);
    }
}
