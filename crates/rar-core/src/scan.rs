//! Scan orders for a square token grid (paper Table 3 and Fig. 6).
//!
//! An order is a `Vec<usize>` of length `side²` where `order[k]` is the **raster index**
//! (`row · side + col`) of the `k`-th token to generate. This is the same convention as the
//! reference's `orders` tensor and as [`crate::order`].
//!
//! The six orders, exactly:
//!
//! * **row-major** (raster): rows top to bottom, each left to right. `order[k] = k`.
//! * **spiral-in**: start at the top-left corner and walk clockwise along the outer ring
//!   (right along the top row, down the right column, left along the bottom row, up the
//!   left column), then the next ring inwards, ending at the centre.
//! * **spiral-out**: spiral-in reversed: start at the centre and unwind counter-clockwise
//!   outwards, ending at the top-left corner.
//! * **z-curve** (Morton order): cells sorted by the Morton code that interleaves the bits of
//!   `row` and `col` with the column in the low bit (`… r1 c1 r0 c0`), so every 2×2 block is
//!   visited top-left, top-right, bottom-left, bottom-right, recursively. For sides that are
//!   not powers of two the same sort applies (cells outside the grid are simply absent).
//! * **subsample**: the four stride-2 sub-lattices one after another — (even row, even col),
//!   (even row, odd col), (odd row, even col), (odd row, odd col) — each in raster order. The
//!   first quarter is a coarse ½-resolution image, the rest fills in.
//! * **alternate** (boustrophedon / "snake"): rows top to bottom, even rows left to right,
//!   odd rows right to left.

use crate::{CoreError, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// One of the paper's six scan orders over a square grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ScanOrder {
    /// Raster order (the default, and the best in the paper's Table 3).
    #[default]
    RowMajor,
    /// Clockwise spiral from the top-left corner to the centre.
    SpiralIn,
    /// Spiral-in reversed: from the centre outwards.
    SpiralOut,
    /// Morton (Z) order.
    ZCurve,
    /// The four stride-2 sub-lattices in turn.
    Subsample,
    /// Snake order: alternate left→right and right→left rows.
    Alternate,
}

impl ScanOrder {
    /// All six orders, in the paper's order.
    pub const ALL: [ScanOrder; 6] = [
        ScanOrder::RowMajor,
        ScanOrder::SpiralIn,
        ScanOrder::SpiralOut,
        ScanOrder::ZCurve,
        ScanOrder::Subsample,
        ScanOrder::Alternate,
    ];

    /// The kebab-case name used on command lines and in configs.
    pub fn name(self) -> &'static str {
        match self {
            ScanOrder::RowMajor => "row-major",
            ScanOrder::SpiralIn => "spiral-in",
            ScanOrder::SpiralOut => "spiral-out",
            ScanOrder::ZCurve => "z-curve",
            ScanOrder::Subsample => "subsample",
            ScanOrder::Alternate => "alternate",
        }
    }

    /// The order for a `side × side` grid: `order[k]` = raster index of the `k`-th token.
    pub fn positions(self, side: usize) -> Result<Vec<usize>> {
        if side == 0 {
            return Err(CoreError::InvalidGrid(
                "grid side must be at least 1".into(),
            ));
        }
        let n = side * side;
        Ok(match self {
            ScanOrder::RowMajor => (0..n).collect(),
            ScanOrder::SpiralIn => spiral_in(side),
            ScanOrder::SpiralOut => {
                let mut o = spiral_in(side);
                o.reverse();
                o
            }
            ScanOrder::ZCurve => {
                let mut o: Vec<usize> = (0..n).collect();
                o.sort_by_key(|&p| morton(p / side, p % side));
                o
            }
            ScanOrder::Subsample => {
                let mut o = Vec::with_capacity(n);
                for (row_parity, col_parity) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                    for r in (row_parity..side).step_by(2) {
                        for c in (col_parity..side).step_by(2) {
                            o.push(r * side + c);
                        }
                    }
                }
                o
            }
            ScanOrder::Alternate => (0..side)
                .flat_map(|r| {
                    let row = r * side;
                    let cols: Box<dyn Iterator<Item = usize>> = if r % 2 == 0 {
                        Box::new(0..side)
                    } else {
                        Box::new((0..side).rev())
                    };
                    cols.map(move |c| row + c)
                })
                .collect(),
        })
    }

    /// The order for a sequence of `num_tokens` tokens on a square grid (e.g. 256 → 16×16).
    pub fn positions_for_tokens(self, num_tokens: usize) -> Result<Vec<usize>> {
        self.positions(grid_side(num_tokens)?)
    }
}

/// The side of the square grid holding `num_tokens` tokens, or an error if it is not square.
pub fn grid_side(num_tokens: usize) -> Result<usize> {
    let side = (num_tokens as f64).sqrt().round() as usize;
    if side == 0 || side * side != num_tokens {
        return Err(CoreError::InvalidGrid(format!(
            "{num_tokens} tokens do not form a square grid"
        )));
    }
    Ok(side)
}

/// Clockwise spiral from the top-left corner inwards.
fn spiral_in(side: usize) -> Vec<usize> {
    let mut order = Vec::with_capacity(side * side);
    let (mut top, mut left) = (0usize, 0usize);
    let (mut bottom, mut right) = (side - 1, side - 1);
    loop {
        (left..=right).for_each(|c| order.push(top * side + c));
        if top == bottom {
            break;
        }
        (top + 1..=bottom).for_each(|r| order.push(r * side + right));
        if left == right {
            break;
        }
        (left..right)
            .rev()
            .for_each(|c| order.push(bottom * side + c));
        (top + 1..bottom)
            .rev()
            .for_each(|r| order.push(r * side + left));
        top += 1;
        left += 1;
        if top > bottom - 1 || left > right - 1 {
            break;
        }
        bottom -= 1;
        right -= 1;
    }
    order
}

/// Interleaves the bits of `row` (odd bit positions) and `col` (even bit positions).
fn morton(row: usize, col: usize) -> u128 {
    let mut code = 0u128;
    for bit in 0..usize::BITS {
        code |= (((col >> bit) & 1) as u128) << (2 * bit);
        code |= (((row >> bit) & 1) as u128) << (2 * bit + 1);
    }
    code
}

impl fmt::Display for ScanOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ScanOrder {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self> {
        let normalised = s.trim().to_ascii_lowercase().replace('_', "-");
        let alias = match normalised.as_str() {
            "raster" => "row-major",
            "zcurve" | "z-order" | "morton" => "z-curve",
            "snake" => "alternate",
            other => other,
        };
        ScanOrder::ALL
            .into_iter()
            .find(|o| o.name() == alias)
            .ok_or_else(|| {
                CoreError::InvalidSchedule(format!(
                    "unknown scan order '{s}' (expected one of row-major, spiral-in, spiral-out, z-curve, subsample, alternate)"
                ))
            })
    }
}

/// Checks that `order` is a permutation of `0..len`.
pub fn validate_permutation(order: &[usize], len: usize) -> Result<()> {
    if order.len() != len {
        return Err(CoreError::NotAPermutation {
            len,
            reason: format!("it has {} entries", order.len()),
        });
    }
    let mut seen = vec![false; len];
    for (k, &p) in order.iter().enumerate() {
        if p >= len {
            return Err(CoreError::NotAPermutation {
                len,
                reason: format!("entry {k} is {p}"),
            });
        }
        if std::mem::replace(&mut seen[p], true) {
            return Err(CoreError::NotAPermutation {
                len,
                reason: format!("position {p} appears twice"),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(order: ScanOrder, side: usize) -> Vec<Vec<usize>> {
        // step index at each cell, for readable expectations
        let o = order.positions(side).unwrap();
        let mut g = vec![vec![0; side]; side];
        for (k, p) in o.into_iter().enumerate() {
            g[p / side][p % side] = k;
        }
        g
    }

    #[test]
    fn four_by_four_orders_are_as_documented() {
        assert_eq!(
            grid(ScanOrder::SpiralIn, 4),
            [[0, 1, 2, 3], [11, 12, 13, 4], [10, 15, 14, 5], [9, 8, 7, 6]]
        );
        assert_eq!(
            grid(ScanOrder::SpiralOut, 4),
            [[15, 14, 13, 12], [4, 3, 2, 11], [5, 0, 1, 10], [6, 7, 8, 9]]
        );
        assert_eq!(
            grid(ScanOrder::ZCurve, 4),
            [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]]
        );
        assert_eq!(
            grid(ScanOrder::Subsample, 4),
            [[0, 4, 1, 5], [8, 12, 9, 13], [2, 6, 3, 7], [10, 14, 11, 15]]
        );
        assert_eq!(
            grid(ScanOrder::Alternate, 4),
            [[0, 1, 2, 3], [7, 6, 5, 4], [8, 9, 10, 11], [15, 14, 13, 12]]
        );
    }

    #[test]
    fn odd_sides_spiral_to_the_centre() {
        assert_eq!(
            grid(ScanOrder::SpiralIn, 3),
            [[0, 1, 2], [7, 8, 3], [6, 5, 4]]
        );
        assert_eq!(ScanOrder::SpiralIn.positions(1).unwrap(), [0]);
        assert_eq!(grid(ScanOrder::SpiralIn, 2), [[0, 1], [3, 2]]);
    }

    #[test]
    fn names_round_trip() {
        for o in ScanOrder::ALL {
            assert_eq!(o.name().parse::<ScanOrder>().unwrap(), o);
        }
        assert_eq!("raster".parse::<ScanOrder>().unwrap(), ScanOrder::RowMajor);
        assert!("diagonal".parse::<ScanOrder>().is_err());
        assert!(ScanOrder::RowMajor.positions(0).is_err());
        assert!(grid_side(255).is_err());
        assert_eq!(grid_side(256).unwrap(), 16);
    }
}
