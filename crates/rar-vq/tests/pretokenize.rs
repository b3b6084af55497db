//! End-to-end pretokenization of a tiny generated ImageNet-layout folder with a small
//! random-weight tokenizer: shards read back to the same tokens and labels an independent
//! encode gives, the corrupt file is skipped and listed, and interrupted runs resume without
//! losing or duplicating images.

mod common;

use std::path::Path;

use burn::prelude::*;
use common::*;
use image::{Rgb, RgbImage};
use rar_data::imaging::load_rgb;
use rar_data::shard::{INDEX_FILE, SKIPPED_FILE, ShardIndex, shard_file_name};
use rar_data::{CropMode, DataError, Dataset, PretokenizeConfig, ShardSet, TokenData, pretokenize};
use rar_vq::{Tokenizer, TokenizerConfig, images_to_tensor};

/// Every label and token of a finished run, with every shard's checksum verified.
fn read_run(dir: &Path) -> Result<(Vec<u16>, Vec<u16>), DataError> {
    let set = ShardSet::open(dir)?;
    set.verify_checksums()?;
    let (mut labels, mut tokens) = (Vec::new(), Vec::new());
    for i in 0..set.len() {
        let record = set.get(i)?;
        labels.push(record.class);
        tokens.extend(record.tokens);
    }
    Ok((labels, tokens))
}

/// A small tokenizer: 3 levels (factor 4), 32-px crops → 8×8 = 64 tokens, 32 codes.
fn tiny_tokenizer(device: &Device) -> Tokenizer {
    TokenizerConfig::new()
        .with_base_channels(8)
        .with_channel_multipliers(vec![1, 2, 2])
        .with_num_res_blocks(1)
        .with_z_channels(8)
        .with_codebook_size(32)
        .with_norm_groups(4)
        .with_resolution(32)
        .init(device)
        .unwrap()
}

fn picture(w: u32, h: u32, seed: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let v = x.wrapping_mul(31 + seed) ^ y.wrapping_mul(17 + 3 * seed);
        Rgb([
            (v % 251) as u8,
            ((x + seed * 40) % 256) as u8,
            ((y * 3 + seed) % 256) as u8,
        ])
    })
}

/// `root/<wnid>/…`: 3 classes, 7 good images (PNG and JPEG, various sizes), one corrupt
/// JPEG and one non-image file.
fn make_folder(root: &Path) -> Vec<(String, u16)> {
    let classes = ["n01440764", "n01443537", "n01484850"];
    let mut good = Vec::new();
    let files: [(usize, &str, u32, u32); 7] = [
        (0, "a.JPEG", 50, 40),
        (0, "b.png", 90, 120),
        (1, "c.JPEG", 300, 200),
        (1, "d.JPEG", 36, 36),
        (1, "e.png", 40, 75),
        (2, "f.JPEG", 128, 64),
        (2, "g.png", 35, 35),
    ];
    for c in classes {
        std::fs::create_dir_all(root.join(c)).unwrap();
    }
    for (i, (class, name, w, h)) in files.iter().enumerate() {
        let path = root.join(classes[*class]).join(name);
        picture(*w, *h, i as u32).save(&path).unwrap();
        good.push((format!("{}/{}", classes[*class], name), *class as u16));
    }
    std::fs::write(
        root.join(classes[1]).join("broken.JPEG"),
        b"\xff\xd8\xff\xe0garbage",
    )
    .unwrap();
    std::fs::write(root.join(classes[2]).join("notes.txt"), b"not an image").unwrap();
    good
}

fn options(input: &Path, output: &Path) -> PretokenizeConfig {
    let mut o = PretokenizeConfig::new(input, output);
    o.image_size = 32;
    o.batch_size = 2;
    o.images_per_shard = 3;
    o.progress = false;
    o
}

/// Tokens of `rel` encoded independently of the pretokenizer.
fn expected_tokens(
    tok: &Tokenizer,
    root: &Path,
    rel: &str,
    mode: CropMode,
    device: &Device,
) -> Vec<u16> {
    let img = load_rgb(root.join(rel)).unwrap();
    let crops = mode.crops(&img, 32).unwrap();
    let ids = tok
        .encode(images_to_tensor(&crops, device).unwrap())
        .unwrap();
    int_values(ids).into_iter().map(|v| v as u16).collect()
}

#[test]
fn pretokenizes_and_resumes_a_tiny_imagenet_folder() {
    for (dev_name, device) in devices() {
        println!("device {dev_name}");
        let tmp = tempfile::tempdir().unwrap();
        let input = tmp.path().join("train");
        let out = tmp.path().join("tokens");
        let good = make_folder(&input);
        let tok = tiny_tokenizer(&device);

        let summary = pretokenize(&tok, &options(&input, &out)).unwrap();
        // 8 enumerated images (7 good + 1 corrupt) → 3 shards of ≤ 3 images.
        assert_eq!(summary.images_total, 8);
        assert_eq!(summary.images_encoded, 7);
        assert_eq!(summary.shards_written, 3);
        assert_eq!(summary.shards_reused, 0);
        assert_eq!(summary.records_written, 70);
        assert_eq!(summary.skipped.len(), 1);
        assert!(summary.skipped[0].path.ends_with("n01443537/broken.JPEG"));
        let listing = std::fs::read_to_string(out.join(SKIPPED_FILE)).unwrap();
        assert!(listing.contains("broken.JPEG"), "{listing}");

        let set = ShardSet::open(&out).unwrap();
        assert_eq!(set.len(), 70);
        let spec = set.spec();
        assert_eq!(
            (spec.tokens_per_record, spec.codebook_size, spec.num_classes),
            (64, 32, 3)
        );
        for (i, (rel, label)) in good.iter().enumerate() {
            let want = expected_tokens(&tok, &input, rel, CropMode::TenCrop, &device);
            for crop in 0..10 {
                let r = set.get(i * 10 + crop).unwrap();
                assert_eq!(r.class, *label, "{rel} crop {crop}");
                assert_eq!(
                    r.tokens,
                    &want[crop * 64..(crop + 1) * 64],
                    "{rel} crop {crop}"
                );
            }
        }
        let reference = read_run(&out).unwrap();

        // A finished run resumes to a no-op.
        let again = pretokenize(&tok, &options(&input, &out)).unwrap();
        assert_eq!((again.shards_written, again.shards_reused), (0, 3));
        assert_eq!(again.skipped.len(), 1);

        // Interruption after shard 0: the index lists only shard 0; shard 1's file was
        // written but not recorded, shard 2's is missing. Resuming redoes shards 1 and 2.
        let mut index = ShardIndex::read(&out).unwrap();
        index.shards.truncate(1);
        std::fs::write(out.join(INDEX_FILE), serde_json::to_string(&index).unwrap()).unwrap();
        std::fs::remove_file(out.join(shard_file_name(2))).unwrap();
        assert!(matches!(
            read_run(&out),
            Err(DataError::InvalidShard { .. })
        ));
        let resumed = pretokenize(&tok, &options(&input, &out)).unwrap();
        assert_eq!((resumed.shards_written, resumed.shards_reused), (2, 1));
        assert_eq!(read_run(&out).unwrap(), reference);

        // A shard truncated on disk is detected and redone.
        let p = out.join(shard_file_name(1));
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 7]).unwrap();
        assert!(matches!(
            read_run(&out),
            Err(DataError::TruncatedShard { .. })
        ));
        let resumed = pretokenize(&tok, &options(&input, &out)).unwrap();
        assert_eq!((resumed.shards_written, resumed.shards_reused), (1, 2));
        assert_eq!(read_run(&out).unwrap(), reference);

        // A shard whose payload was damaged after it was written (one flipped token bit,
        // the header intact) is not trusted on a rerun: it is checked in full and redone.
        let p = out.join(shard_file_name(0));
        let mut bytes = std::fs::read(&p).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        std::fs::write(&p, &bytes).unwrap();
        let resumed = pretokenize(&tok, &options(&input, &out)).unwrap();
        assert_eq!((resumed.shards_written, resumed.shards_reused), (1, 2));
        assert_eq!(read_run(&out).unwrap(), reference);

        // Resuming with different settings is refused, naming the difference.
        let mut other = options(&input, &out);
        other.crop_mode = CropMode::CenterFlip;
        let e = pretokenize(&tok, &other).unwrap_err();
        assert!(matches!(e, DataError::ResumeMismatch { .. }), "{e}");
        assert!(e.to_string().contains("crop_mode"), "{e}");
    }
}

#[test]
fn center_flip_mode_writes_crop_and_mirror() {
    let (_, device) = devices().remove(0);
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("train");
    let out = tmp.path().join("tokens");
    let good = make_folder(&input);
    let tok = tiny_tokenizer(&device);
    let mut o = options(&input, &out);
    o.crop_mode = CropMode::CenterFlip;
    o.images_per_shard = 100;
    o.batch_size = 3;
    let summary = pretokenize(&tok, &o).unwrap();
    assert_eq!(summary.records_written, 14);
    let set = ShardSet::open(&out).unwrap();
    assert_eq!(set.index().crops_per_image, 2);
    for (i, (rel, label)) in good.iter().enumerate() {
        let want = expected_tokens(&tok, &input, rel, CropMode::CenterFlip, &device);
        for crop in 0..2 {
            let r = set.get(i * 2 + crop).unwrap();
            assert_eq!(r.class, *label);
            assert_eq!(r.tokens, &want[crop * 64..(crop + 1) * 64]);
        }
    }
}

#[test]
fn bad_inputs_are_errors() {
    let (_, device) = devices().remove(0);
    let tmp = tempfile::tempdir().unwrap();
    let tok = tiny_tokenizer(&device);
    // No such directory, and a directory without class folders.
    let e = pretokenize(
        &tok,
        &options(&tmp.path().join("nope"), &tmp.path().join("o")),
    )
    .unwrap_err();
    assert!(matches!(e, DataError::Io { .. }), "{e}");
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let e = pretokenize(&tok, &options(&empty, &tmp.path().join("o"))).unwrap_err();
    assert!(e.to_string().contains("class folders"), "{e}");
    // Class folders without any image, and a limit of 0: nothing to tokenize is an error,
    // not a run that "succeeds" without an index.
    std::fs::create_dir_all(tmp.path().join("hollow/n0001")).unwrap();
    let e = pretokenize(
        &tok,
        &options(&tmp.path().join("hollow"), &tmp.path().join("o3")),
    )
    .unwrap_err();
    assert!(e.to_string().contains("no image to tokenize"), "{e}");
    make_folder(&tmp.path().join("train"));
    let mut o = options(&tmp.path().join("train"), &tmp.path().join("o4"));
    o.limit = Some(0);
    let e = pretokenize(&tok, &o).unwrap_err();
    assert!(e.to_string().contains("--limit 0"), "{e}");
    // An image size the tokenizer cannot tile.
    let mut o = options(&tmp.path().join("train"), &tmp.path().join("o2"));
    o.image_size = 30;
    assert!(pretokenize(&tok, &o).is_err());
    // Reading a directory that holds no run.
    assert!(matches!(read_run(tmp.path()), Err(DataError::Io { .. })));
}
