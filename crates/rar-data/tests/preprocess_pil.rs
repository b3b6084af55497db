//! The ADM centre crop against Pillow: `tests/data/pil_*_adm*.png` were produced from the
//! `pil_*_input.png` patterns by the reference's `center_crop_arr` run with Pillow
//! (`tests/data/make_pil_reference.py`). BOX halving of odd sizes, bicubic down- and
//! up-sampling and the crop offsets must all match bit for bit.

use std::path::PathBuf;

use rar_data::imaging::{adm_center_crop, load_rgb};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

#[test]
fn adm_center_crop_matches_pillow() {
    for (name, size) in [("wide", 281), ("tall", 281), ("small", 256)] {
        let input = load_rgb(data(&format!("pil_{name}_input.png"))).unwrap();
        let want = load_rgb(data(&format!("pil_{name}_adm{size}.png"))).unwrap();
        let got = adm_center_crop(&input, size).unwrap();
        assert_eq!(got.dimensions(), want.dimensions(), "{name}");
        let diff = got
            .as_raw()
            .iter()
            .zip(want.as_raw())
            .filter(|(a, b)| a != b)
            .count();
        let max = got
            .as_raw()
            .iter()
            .zip(want.as_raw())
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        println!("{name}: {diff} differing bytes, max difference {max}");
        assert_eq!(
            diff, 0,
            "{name}: {diff} bytes differ from Pillow (max {max})"
        );
    }
}
