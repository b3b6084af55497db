//! Pictures of toy-dataset grids: the palette is the toy dataset's "decoder".

use crate::toy::PALETTE;

/// Renders one grid of `side × side` tokens as RGB pixels via the palette, each token a
/// `scale × scale` block; returns a row-major `[side·scale, side·scale, 3]` buffer. Ids outside
/// the palette render magenta-grey so they stand out.
pub fn render_rgb<T: Copy + Into<u32>>(tokens: &[T], side: usize, scale: usize) -> Vec<u8> {
    let px = side * scale;
    let mut out = vec![0u8; px * px * 3];
    for y in 0..px {
        for x in 0..px {
            let t = tokens
                .get((y / scale) * side + x / scale)
                .map_or(0, |&t| t.into() as usize);
            let rgb = PALETTE.get(t).copied().unwrap_or([128, 64, 128]);
            out[(y * px + x) * 3..(y * px + x) * 3 + 3].copy_from_slice(&rgb);
        }
    }
    out
}

/// Lays out token grids (each `side × side`) as one RGB image with `cols` columns, each token
/// `scale × scale` pixels and a one-token black gutter; returns `(width, height, rgb)`.
pub fn render_grid<T: Copy + Into<u32>>(
    grids: &[Vec<T>],
    side: usize,
    cols: usize,
    scale: usize,
) -> (u32, u32, Vec<u8>) {
    let cols = cols.max(1);
    let rows = grids.len().div_ceil(cols);
    let cell = (side + 1) * scale;
    let (w, h) = (cols * cell + scale, rows * cell + scale);
    let mut out = vec![0u8; w * h * 3];
    let px = side * scale;
    for (i, g) in grids.iter().enumerate() {
        let img = render_rgb(g, side, scale);
        let (ox, oy) = ((i % cols) * cell + scale, (i / cols) * cell + scale);
        for y in 0..px {
            let dst = ((oy + y) * w + ox) * 3;
            out[dst..dst + px * 3].copy_from_slice(&img[y * px * 3..(y + 1) * px * 3]);
        }
    }
    (w as u32, h as u32, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering_uses_the_palette() {
        let tokens: Vec<u32> = (0..4).collect();
        let px = render_rgb(&tokens, 2, 2);
        assert_eq!(px.len(), 4 * 4 * 3);
        assert_eq!(&px[0..3], &PALETTE[0]);
        assert_eq!(&px[(3 * 4 + 3) * 3..(3 * 4 + 3) * 3 + 3], &PALETTE[3]);
    }

    #[test]
    fn grids_are_tiled_with_gutters() {
        let grids = vec![vec![1u16; 4]; 3];
        let (w, h, rgb) = render_grid(&grids, 2, 2, 3);
        assert_eq!((w, h), (2 * 3 * 3 + 3, 2 * 3 * 3 + 3));
        assert_eq!(rgb.len(), (w * h * 3) as usize);
        // The gutter is black, the first token of the first grid is palette colour 1.
        assert_eq!(&rgb[0..3], &[0, 0, 0]);
        let first = ((3 * w + 3) * 3) as usize;
        assert_eq!(&rgb[first..first + 3], &PALETTE[1]);
    }
}
