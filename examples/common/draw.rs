//! Drawing on RGB images for `scan_orders`: a scan-order panel, lines, a colour map and a
//! tiny bitmap font.

use image::{Rgb, RgbImage};

/// One order: cells coloured by step, the path drawn through cell centres.
pub fn draw_panel(
    img: &mut RgbImage,
    x0: u32,
    y0: u32,
    side: usize,
    cell: u32,
    positions: &[usize],
) {
    let n = positions.len();
    let center = |p: usize| {
        let (r, c) = ((p / side) as u32, (p % side) as u32);
        (
            (x0 + c * cell + cell / 2) as i64,
            (y0 + r * cell + cell / 2) as i64,
        )
    };
    for (step, &p) in positions.iter().enumerate() {
        let colour = viridis(step as f32 / (n.max(2) - 1) as f32);
        let (r, c) = ((p / side) as u32, (p % side) as u32);
        for dy in 0..cell {
            for dx in 0..cell {
                let edge = dx == 0 || dy == 0;
                let px = if edge { Rgb([255, 255, 255]) } else { colour };
                img.put_pixel(x0 + c * cell + dx, y0 + r * cell + dy, px);
            }
        }
    }
    for w in positions.windows(2) {
        let (a, b) = (center(w[0]), center(w[1]));
        draw_line(img, a, b, Rgb([255, 255, 255]));
    }
    let (sx, sy) = center(positions[0]);
    let radius = (cell as i64 / 4).max(2);
    for dy in -radius..=radius {
        for dx in -radius..=radius {
            if dx * dx + dy * dy <= radius * radius {
                img.put_pixel((sx + dx) as u32, (sy + dy) as u32, Rgb([230, 30, 30]));
            }
        }
    }
}

/// Bresenham line, 2 px wide.
fn draw_line(img: &mut RgbImage, (mut x, mut y): (i64, i64), (x1, y1): (i64, i64), c: Rgb<u8>) {
    let (dx, dy) = ((x1 - x).abs(), -(y1 - y).abs());
    let (sx, sy) = (if x < x1 { 1 } else { -1 }, if y < y1 { 1 } else { -1 });
    let mut err = dx + dy;
    loop {
        for (ox, oy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            let (px, py) = (x + ox, y + oy);
            if px >= 0 && py >= 0 && (px as u32) < img.width() && (py as u32) < img.height() {
                img.put_pixel(px as u32, py as u32, c);
            }
        }
        if x == x1 && y == y1 {
            break;
        }
        let e2 = 2 * err;
        if e2 >= dy {
            err += dy;
            x += sx;
        }
        if e2 <= dx {
            err += dx;
            y += sy;
        }
    }
}

/// A five-stop approximation of the viridis colour map, `t ∈ [0, 1]`.
fn viridis(t: f32) -> Rgb<u8> {
    const STOPS: [[f32; 3]; 5] = [
        [68.0, 1.0, 84.0],
        [59.0, 82.0, 139.0],
        [33.0, 145.0, 140.0],
        [94.0, 201.0, 98.0],
        [253.0, 231.0, 37.0],
    ];
    let x = t.clamp(0.0, 1.0) * (STOPS.len() - 1) as f32;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f32;
    let mix = |k: usize| (STOPS[i][k] + (STOPS[i + 1][k] - STOPS[i][k]) * f).round() as u8;
    Rgb([mix(0), mix(1), mix(2)])
}

/// Draws `text` (A–Z and '-') with a 5×7 bitmap font scaled by `scale`.
pub fn draw_text(img: &mut RgbImage, x0: u32, y0: u32, text: &str, scale: u32) {
    let mut x = x0;
    for ch in text.chars() {
        if let Some(rows) = glyph(ch) {
            for (ry, bits) in rows.iter().enumerate() {
                for rx in 0..5u32 {
                    if bits & (0b10000 >> rx) != 0 {
                        for dy in 0..scale {
                            for dx in 0..scale {
                                let (px, py) = (x + rx * scale + dx, y0 + ry as u32 * scale + dy);
                                if px < img.width() && py < img.height() {
                                    img.put_pixel(px, py, Rgb([20, 20, 20]));
                                }
                            }
                        }
                    }
                }
            }
        }
        x += 6 * scale;
    }
}

/// 5×7 glyphs for the letters the order names use.
fn glyph(ch: char) -> Option<[u8; 7]> {
    Some(match ch {
        'A' => [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        '-' => [0x00, 0x00, 0x00, 0x0E, 0x00, 0x00, 0x00],
        _ => return None,
    })
}
