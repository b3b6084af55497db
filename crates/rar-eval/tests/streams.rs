//! Reading image sets and reference batches, and the statistics cache: what numpy writes is
//! read back exactly, bad files are errors naming the file, stale caches are not used.

use rar_eval::{
    CacheKey, ElementType, FeatureSet, Gaussian, ImageStream, NpyArray, NpzFile, cache_path,
    load_cache, npy_header, save_cache, stored_statistics, write_npz,
};
use serde_json::Value;

mod common;
use common::{fixture_json, fixture_path as fixture, numbers};

fn expected() -> Value {
    fixture_json("reference_small.json")
}

fn collect(stream: ImageStream) -> (Vec<usize>, Vec<u8>) {
    let mut counts = Vec::new();
    let mut pixels = Vec::new();
    for batch in stream {
        let batch = batch.unwrap();
        counts.push(batch.count);
        pixels.extend(batch.pixels);
    }
    (counts, pixels)
}

#[test]
fn numpy_reference_batches_read_exactly_stored_or_compressed() {
    let want = expected();
    let want_pixels: Vec<u8> = numbers(&want["arr_0"]).iter().map(|&v| v as u8).collect();
    for name in ["reference_small.npz", "reference_small_compressed.npz"] {
        let stream = ImageStream::open(fixture(name), 2).unwrap();
        assert_eq!((stream.len(), stream.height(), stream.width()), (5, 6, 4));
        let (counts, pixels) = collect(stream);
        assert_eq!(counts, vec![2, 2, 1], "{name}");
        assert_eq!(pixels, want_pixels, "{name}");
        let (pool, spatial) = stored_statistics(&fixture(name)).unwrap().unwrap();
        assert_eq!(pool.mean(), numbers(&want["mu"]).as_slice(), "{name}");
        assert_eq!(pool.cov(), numbers(&want["sigma"]).as_slice(), "{name}");
        assert_eq!(spatial.mean(), numbers(&want["mu_s"]).as_slice(), "{name}");
        assert_eq!(
            spatial.cov(),
            numbers(&want["sigma_s"]).as_slice(),
            "{name}"
        );
        let mut names = NpzFile::open(fixture(name)).unwrap().names();
        names.sort();
        assert_eq!(names, ["arr_0", "mu", "mu_s", "sigma", "sigma_s"]);
    }
}

#[test]
fn a_sample_file_without_statistics_has_none() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.npz");
    write_npz(
        &path,
        &[("arr_0", NpyArray::U8(&[7; 2 * 3 * 3 * 3], &[2, 3, 3, 3]))],
    )
    .unwrap();
    assert!(stored_statistics(&path).unwrap().is_none());
    // And numpy's layout: what we write is what the reader sees.
    let (counts, pixels) = collect(ImageStream::open(&path, 10).unwrap());
    assert_eq!((counts, pixels.len()), (vec![2], 54));
}

#[test]
fn bad_sample_files_are_errors_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let at = |n: &str| dir.path().join(n);
    std::fs::write(at("text.npz"), "hello").unwrap();
    let err = ImageStream::open(at("text.npz"), 4)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("text.npz") && err.contains("not an .npz"),
        "{err}"
    );

    write_npz(
        &at("floats.npz"),
        &[("arr_0", NpyArray::F32(&[0.0; 12], &[1, 2, 2, 3]))],
    )
    .unwrap();
    let err = ImageStream::open(at("floats.npz"), 4)
        .unwrap_err()
        .to_string();
    assert!(err.contains("floats.npz") && err.contains("uint8"), "{err}");

    write_npz(
        &at("gray.npz"),
        &[("arr_0", NpyArray::U8(&[0; 8], &[2, 2, 2]))],
    )
    .unwrap();
    let err = ImageStream::open(at("gray.npz"), 4)
        .unwrap_err()
        .to_string();
    assert!(err.contains("[N, height, width, 3]"), "{err}");

    write_npz(
        &at("other.npz"),
        &[("images", NpyArray::U8(&[0; 12], &[1, 2, 2, 3]))],
    )
    .unwrap();
    let err = ImageStream::open(at("other.npz"), 4)
        .unwrap_err()
        .to_string();
    assert!(err.contains("arr_0") && err.contains("images"), "{err}");

    // Truncated: the header promises 4 images, the data holds 3 — an error after the
    // three, never three images reported as the whole set.
    let short = at("short.npz");
    {
        use std::io::Write;
        let file = std::fs::File::create(&short).unwrap();
        let mut zip = zip::ZipWriter::new(file);
        zip.start_file("arr_0.npy", zip::write::SimpleFileOptions::default())
            .unwrap();
        let mut npy = npy_header(ElementType::U8, &[4, 2, 2, 3]);
        npy.extend([1u8; 3 * 12]);
        zip.write_all(&npy).unwrap();
        zip.finish().unwrap();
    }
    let mut stream = ImageStream::open(&short, 1).unwrap();
    let results: Vec<_> = stream.by_ref().collect();
    assert_eq!(results.len(), 4);
    let err = results[3].as_ref().unwrap_err().to_string();
    assert!(
        err.contains("short.npz") && err.contains("ends after image 3 of 4"),
        "{err}"
    );
}

#[test]
fn png_folders_stream_in_name_order_and_refuse_mixed_sizes() {
    let dir = tempfile::tempdir().unwrap();
    for (i, name) in ["000002.png", "000000.png", "000001.png"]
        .iter()
        .enumerate()
    {
        let img = image::RgbImage::from_pixel(5, 3, image::Rgb([i as u8, 0, 0]));
        img.save(dir.path().join(name)).unwrap();
    }
    std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
    let stream = ImageStream::open(dir.path(), 2).unwrap();
    assert_eq!((stream.len(), stream.height(), stream.width()), (3, 3, 5));
    let (counts, pixels) = collect(stream);
    assert_eq!(counts, vec![2, 1]);
    // 000000.png was written second (red 1), 000001.png third (2), 000002.png first (0).
    let reds: Vec<u8> = pixels.chunks(5 * 3 * 3).map(|img| img[0]).collect();
    assert_eq!(reds, vec![1, 2, 0]);

    image::RgbImage::new(4, 4)
        .save(dir.path().join("000003.png"))
        .unwrap();
    let results: Vec<_> = ImageStream::open(dir.path(), 2).unwrap().collect();
    let err = results.last().unwrap().as_ref().unwrap_err().to_string();
    assert!(err.contains("000003.png") && err.contains("4×4"), "{err}");

    let empty = tempfile::tempdir().unwrap();
    let err = ImageStream::open(empty.path(), 2).unwrap_err().to_string();
    assert!(err.contains("no .png"), "{err}");
}

#[test]
fn the_cache_round_trips_and_is_ignored_when_stale() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("samples.npz");
    write_npz(&source, &[("arr_0", NpyArray::U8(&[3; 12], &[1, 2, 2, 3]))]).unwrap();
    let pool: Vec<f32> = (0..3 * 2048).map(|i| (i % 17) as f32 * 0.25).collect();
    let spatial: Vec<f32> = (0..3 * 2023).map(|i| (i % 5) as f32).collect();
    let set = FeatureSet {
        count: 3,
        pool_stats: Gaussian::of_features(&pool, 2048).unwrap(),
        spatial_stats: Gaussian::of_features(&spatial, 2023).unwrap(),
        pool,
        inception_score: 1.25,
    };
    let key = CacheKey::of(&source, "weights.pth (10 bytes)").unwrap();
    let path = cache_path(&source);
    assert_eq!(path, dir.path().join("samples.npz.rar-eval.npz"));
    save_cache(&path, &key, &set).unwrap();
    assert_eq!(load_cache(&path, &key).unwrap().unwrap(), set);

    // Other weights, or a rewritten source: not used.
    let other = CacheKey::of(&source, "other.pth (10 bytes)").unwrap();
    assert!(load_cache(&path, &other).unwrap().is_none());
    std::thread::sleep(std::time::Duration::from_millis(20));
    write_npz(&source, &[("arr_0", NpyArray::U8(&[4; 24], &[2, 2, 2, 3]))]).unwrap();
    let changed = CacheKey::of(&source, "weights.pth (10 bytes)").unwrap();
    assert_ne!(changed, key);
    assert!(load_cache(&path, &changed).unwrap().is_none());
    // A garbage cache file is stale, not an error.
    std::fs::write(&path, "garbage").unwrap();
    assert!(load_cache(&path, &key).unwrap().is_none());
}
