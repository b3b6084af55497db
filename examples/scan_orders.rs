//! Renders RAR's six scan orders (paper Table 3 / Fig. 6) as one PNG.
//!
//! Each panel is the token grid; a cell's colour is its step in the order (dark blue = first,
//! yellow = last) and a white line joins consecutive tokens, so the path of generation can be
//! followed from the red start dot.
//!
//! ```text
//! cargo run --release --example scan_orders -- --side 16 --out scan_orders.png
//! ```

mod common;

use anyhow::{Context, Result, ensure};
use clap::Parser;
use common::draw::{draw_panel, draw_text};
use image::{Rgb, RgbImage};
use rar::core::ScanOrder;

#[derive(Parser, Debug)]
#[command(about = "Render the six RAR scan orders as a PNG")]
struct Args {
    /// Grid side (16 for the 16×16 MaskGIT-VQGAN token grid).
    #[arg(long, default_value_t = 16)]
    side: usize,
    /// Pixel size of one grid cell.
    #[arg(long, default_value_t = 20)]
    cell: u32,
    /// Output PNG path.
    #[arg(long, default_value = "scan_orders.png")]
    out: std::path::PathBuf,
}

const MARGIN: u32 = 16;
const TITLE: u32 = 28;

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!((1..=128).contains(&args.side), "--side must be in 1..=128");
    ensure!((4..=64).contains(&args.cell), "--cell must be in 4..=64");
    let panel = args.side as u32 * args.cell;
    let (cols, rows) = (3u32, 2u32);
    let width = cols * panel + (cols + 1) * MARGIN;
    let height = rows * (panel + TITLE) + (rows + 1) * MARGIN;
    let mut img = RgbImage::from_pixel(width, height, Rgb([255, 255, 255]));

    for (i, order) in ScanOrder::ALL.into_iter().enumerate() {
        let x0 = MARGIN + (i as u32 % cols) * (panel + MARGIN);
        let y0 = MARGIN + (i as u32 / cols) * (panel + TITLE + MARGIN);
        draw_text(&mut img, x0, y0 + 4, &order.name().to_uppercase(), 3);
        let positions = order.positions(args.side)?;
        draw_panel(&mut img, x0, y0 + TITLE, args.side, args.cell, &positions);
    }
    rar::sample::write_png_grid(&[img], 1, 1, &args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "wrote {} ({}×{} px, {} orders on a {}×{} grid)",
        args.out.display(),
        width,
        height,
        ScanOrder::ALL.len(),
        args.side,
        args.side
    );
    Ok(())
}
