//! The decode helpers rar-sample uses: ids → 8-bit images, and the PNG grid writer.

mod common;

use burn::prelude::*;
use common::*;
use rar_vq::{Tokenizer, TokenizerConfig, VqError, tensor_to_u8_hwc};

fn tiny(device: &Device) -> Tokenizer {
    TokenizerConfig::new()
        .with_base_channels(8)
        .with_channel_multipliers(vec![1, 2])
        .with_num_res_blocks(1)
        .with_z_channels(4)
        .with_codebook_size(16)
        .with_norm_groups(4)
        .with_resolution(8)
        .init(device)
        .unwrap()
}

#[test]
fn decode_validates_ids() {
    for (_, device) in devices() {
        let tok = tiny(&device);
        let ids = |v: Vec<i64>, s: [usize; 2]| {
            Tensor::<2, Int>::from_data(TensorData::new(v, s), &device)
        };
        // 4 tokens → 2×2 grid → 4×4 pixels with factor 2.
        let imgs = tok
            .decode_to_images(ids(vec![0, 1, 2, 15, 3, 3, 3, 3], [2, 4]))
            .unwrap();
        assert_eq!(imgs.len(), 2);
        assert_eq!(imgs[0].dimensions(), (4, 4));
        let same = tok
            .decode_tokens_to_images(&[0, 1, 2, 15, 3, 3, 3, 3], 4)
            .unwrap();
        assert_eq!(same, imgs);
        assert!(matches!(
            tok.decode(ids(vec![0, 1, 2, 16], [1, 4])),
            Err(VqError::TokenOutOfRange {
                value: 16,
                codebook_size: 16
            })
        ));
        assert!(matches!(
            tok.decode(ids(vec![0, -1, 2, 3], [1, 4])),
            Err(VqError::TokenOutOfRange { value: -1, .. })
        ));
        assert!(matches!(
            tok.decode(ids(vec![0, 1, 2], [1, 3])),
            Err(VqError::InvalidInput { .. })
        ));
        assert!(tok.decode_tokens_to_images(&[0, 1, 2], 4).is_err());
        // Encoding checks the image shape.
        let bad = Tensor::<4>::zeros([1, 3, 5, 4], &device);
        assert!(matches!(tok.encode(bad), Err(VqError::InvalidInput { .. })));
        let bad = Tensor::<4>::zeros([1, 1, 4, 4], &device);
        assert!(tok.encode(bad).is_err());
    }
}

#[test]
fn uint8_conversion_truncates() {
    let (_, device) = devices().remove(0);
    // Values chosen on both sides of step boundaries: floor(255·x), clamped.
    let v = [0.0f32, 1.0, 0.999, 0.5, 1.5, -0.2, 0.003_921_6, 0.003_92];
    let mut data = Vec::new();
    for _ in 0..3 {
        data.extend_from_slice(&v);
    }
    let t = Tensor::<4>::from_data(TensorData::new(data, [1, 3, 2, 4]), &device);
    let (bytes, shape) = tensor_to_u8_hwc(t).unwrap();
    assert_eq!(shape, [1, 2, 4, 3]);
    let red: Vec<u8> = bytes.chunks(3).map(|p| p[0]).collect();
    let want: Vec<u8> = v
        .iter()
        .map(|x| (x.clamp(0.0, 1.0) * 255.0).floor() as u8)
        .collect();
    assert_eq!(red, want);
    assert_eq!(red[2], 254, "0.999·255 = 254.7 truncates to 254");
    assert_eq!(red[3], 127);
}
