//! Training on token shards through the library path of the `train_imagenet` example
//! ([`TrainingConfig::official`], a [`SampleStream`] over a [`ShardSet`], [`Trainer`]): a tiny
//! shard set written with rar-data's writer, a tiny RAR matching it, a few steps on ndarray
//! (flex without that feature), a checkpoint, a resume that continues the loss curve exactly,
//! previews decoded by a tokenizer, and clear errors for shard sets that do not fit the model.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use burn::tensor::Device;
use common::losses;
use rar_data::shard::{INDEX_FILE, INDEX_VERSION, Shard, ShardEntry, ShardIndex, shard_file_name};
use rar_data::{SampleSource, SampleStream, ShardSet, StreamConfig};
use rar_model::{ComputePrecision, RarConfig};
use rar_train::{StepMetrics, TokenizerPreview, TrainError, Trainer, TrainingConfig};
use rar_vq::{Tokenizer, TokenizerConfig};

type Stream = Arc<SampleStream<ShardSet>>;

/// Tokens per record (a 4×4 grid).
const N: usize = 16;
/// Codebook size.
const V: usize = 16;
/// Classes.
const CLASSES: usize = 3;
/// Records per shard (3 images × 2 crops).
const PER_SHARD: usize = 6;
/// Shards.
const SHARDS: usize = 3;

/// Serialises the tests of this file: the tokenizer's random initialisation draws from burn's
/// process-global device RNG, which the trainer reseeds for its dropout masks, so a tokenizer
/// built while another test trains would change that run's masks.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn device() -> Device {
    #[cfg(feature = "ndarray")]
    #[allow(deprecated)]
    return Device::ndarray();
    #[cfg(not(feature = "ndarray"))]
    return Device::flex();
}

fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("rar-shard-training-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A fresh scratch folder holding a shard set of `N` tokens per record in `shards/`; returns
/// both paths.
fn scratch_with_shards(name: &str) -> (PathBuf, PathBuf) {
    let dir = scratch(name);
    let shards = dir.join("shards");
    std::fs::create_dir_all(&shards).unwrap();
    write_set(&shards, N);
    (dir, shards)
}

/// Writes `SHARDS` shards of `PER_SHARD` records with `n` tokens each: class-dependent
/// patterns, so that a model can learn something.
fn write_set(dir: &Path, n: usize) {
    let mut entries = Vec::new();
    for s in 0..SHARDS {
        let mut labels = Vec::new();
        let mut tokens = Vec::new();
        for r in 0..PER_SHARD {
            let class = (s + r / 2) % CLASSES;
            labels.push(class as u16);
            tokens.extend((0..n).map(|i| ((class * 5 + i + r % 2) % V) as u16));
        }
        let file = shard_file_name(s);
        Shard::new(n as u32, V as u32, 2, labels, tokens)
            .unwrap()
            .write(dir.join(&file))
            .unwrap();
        entries.push(ShardEntry {
            file,
            first_image: s * PER_SHARD / 2,
            num_images: PER_SHARD / 2,
            num_records: PER_SHARD as u64,
            skipped: Vec::new(),
        });
    }
    let index = ShardIndex {
        version: INDEX_VERSION,
        tokens_per_record: n as u32,
        codebook_size: V as u32,
        crop_mode: "center-flip".into(),
        crops_per_image: 2,
        image_size: 8,
        classes: (0..CLASSES).map(|c| format!("n{c:08}")).collect(),
        num_images: SHARDS * PER_SHARD / 2,
        images_fingerprint: "test".into(),
        images_per_shard: PER_SHARD / 2,
        shards: entries,
    };
    std::fs::write(dir.join(INDEX_FILE), serde_json::to_string(&index).unwrap()).unwrap();
}

/// The shards of `dir` as a stream: `window_shards` shards per window, 2 chunks per shard.
/// With one shard per window there are several windows per epoch; 18 records, so 6 steps of
/// 4 cross an epoch boundary.
fn open(dir: &Path, seed: u64, window_shards: usize) -> Stream {
    let config = StreamConfig::new(seed)
        .with_window_units(window_shards)
        .with_chunks_per_unit(2);
    Arc::new(SampleStream::new(ShardSet::open(dir).unwrap(), config).unwrap())
}

fn no_log() -> impl FnMut(&StepMetrics) {
    |_: &StepMetrics| {}
}

fn model() -> RarConfig {
    RarConfig::new(32, 1, 2, 64)
        .with_image_seq_len(N)
        .with_codebook_size(V)
        .with_num_classes(CLASSES)
}

/// The example's path: the official recipe, then the run's settings.
fn config(steps: u64) -> TrainingConfig {
    TrainingConfig::official(model(), steps)
        .with_batch_size(4)
        .with_base_lr(3e-3)
        .with_warmup_steps(2.min(steps))
        .with_anneal_steps(2.min(steps), 4.min(steps))
        .unwrap()
        .with_seed(7)
        // ndarray (the smoke test's backend) has no bf16 tensors.
        .with_precision(ComputePrecision::F32)
        .with_log_every(1)
}

#[test]
fn shard_training_checkpoints_and_resumes_on_the_same_loss_curve() {
    let _serial = serial();
    let (dir, shards) = scratch_with_shards("resume");
    let ck = dir.join("ck");
    let steps = 6;

    // The uninterrupted run: sequential reading, no seek, positions 0..24 in stream order.
    let stream = open(&shards, 7, 1);
    let mut full = Trainer::new(config(steps), stream.clone(), vec![device()]).unwrap();
    assert!(
        full.config()
            .data_order
            .as_deref()
            .is_some_and(|k| k.contains("seed 7, window_units 1"))
    );
    let full_losses = losses(&full.run(&mut no_log()).unwrap());
    assert_eq!(full_losses.len(), steps as usize);
    assert!(full_losses.iter().all(|l| l.is_finite()));
    assert_eq!(stream.seeks(), 0, "sequential reading never seeks");
    assert_eq!(stream.position(), steps * 4);
    assert!(stream.stats().windows_loaded >= 4);

    // The interrupted run: 3 steps, a checkpoint, then a resume in a fresh trainer.
    let interrupted = config(steps)
        .with_checkpoint_dir(Some(ck.to_string_lossy().into_owned()))
        .with_checkpoint_every(3);
    let mut first = Trainer::new(interrupted, open(&shards, 7, 1), vec![device()]).unwrap();
    let head = losses(&first.run_until(3, &mut no_log()).unwrap());
    assert_eq!(head, full_losses[..3], "same data, same steps");
    drop(first);

    let mut reopened = None;
    let mut resumed = Trainer::resume(
        &ck,
        |c| {
            let stream = open(&shards, c.seed, 1);
            reopened = Some(stream.clone());
            Ok(stream)
        },
        vec![device()],
    )
    .unwrap();
    let reopened = reopened.unwrap();
    assert_eq!(resumed.step(), 3);
    let tail = losses(&resumed.run(&mut no_log()).unwrap());
    assert_eq!(
        tail,
        full_losses[3..],
        "the loss curve continues identically"
    );
    assert_eq!(reopened.seeks(), 1, "one seek to the resumed position");
    assert_eq!(reopened.position(), steps * 4);

    // Other stream settings would read other samples at the resumed step: refused.
    let err = Trainer::resume(
        &ck,
        |c| Ok(open(&shards, c.seed, 2) as Arc<dyn SampleSource>),
        vec![device()],
    )
    .err()
    .expect("a different window size is refused");
    let msg = err.to_string();
    assert!(matches!(err, TrainError::InvalidSetting(_)), "{msg}");
    assert!(
        msg.contains("window_units 1") && msg.contains("window_units 2"),
        "{msg}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn tiny_tokenizer() -> Tokenizer {
    TokenizerConfig::new()
        .with_base_channels(8)
        .with_channel_multipliers(vec![1, 2])
        .with_num_res_blocks(1)
        .with_z_channels(4)
        .with_codebook_size(V)
        .with_norm_groups(4)
        .with_resolution(8)
        .init(&device())
        .unwrap()
}

#[test]
fn previews_are_decoded_with_a_tokenizer_and_skipped_without() {
    let _serial = serial();
    let (dir, shards) = scratch_with_shards("preview");
    let run = |preview: Option<TokenizerPreview>, name: &str| {
        let previews = dir.join(name);
        let config = config(2)
            .with_preview_every(2)
            .with_preview_classes(vec![0, 1, 2, 1, 0, 2, 1])
            .with_preview_guidance(4.0)
            .with_preview_guidance_power(Some(1.0))
            .with_preview_dir(Some(previews.to_string_lossy().into_owned()));
        let mut trainer = Trainer::new(config, open(&shards, 7, 1), vec![device()]).unwrap();
        if let Some(preview) = preview {
            trainer = trainer.with_previews(preview);
        }
        trainer.run(&mut no_log()).unwrap();
        previews.join(format!("preview-{:08}.png", 2))
    };
    let plain = run(None, "plain");
    assert!(!plain.exists(), "no tokenizer, no preview");
    let stream = open(&shards, 7, 1);
    let preview = TokenizerPreview::for_data(tiny_tokenizer(), stream.as_ref()).unwrap();
    let png = run(Some(preview), "decoded");
    let img = image::open(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
    // 7 images of 8×8 pixels in rows of 5: 2 rows.
    assert_eq!((img.width(), img.height()), (5 * 8, 2 * 8));

    // A tokenizer with another codebook does not fit the shards.
    let other = TokenizerConfig::new()
        .with_base_channels(8)
        .with_channel_multipliers(vec![1, 2])
        .with_num_res_blocks(1)
        .with_z_channels(4)
        .with_codebook_size(32)
        .with_norm_groups(4)
        .with_resolution(8)
        .init(&device())
        .unwrap();
    let err = TokenizerPreview::for_data(other, stream.as_ref())
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("32 codes") && err.contains("16"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// CRC-32 (IEEE), to rewrite a shard's header after patching its payload.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn shard_sets_that_do_not_fit_are_clear_errors() {
    let _serial = serial();
    let dir = scratch("invalid");

    // Tokens per record: 8 in the shards, 16 in the model.
    let short = dir.join("short");
    std::fs::create_dir_all(&short).unwrap();
    write_set(&short, 8);
    let err = Trainer::new(config(1), open(&short, 7, 1), vec![device()])
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("tokens per sample 8 (the model's image_seq_len is 16)"),
        "{err}"
    );
    assert!(err.contains(&short.display().to_string()), "{err}");

    // Class count and codebook size.
    let fine = dir.join("fine");
    std::fs::create_dir_all(&fine).unwrap();
    write_set(&fine, N);
    let wrong = TrainingConfig {
        model: model().with_num_classes(1000).with_codebook_size(1024),
        ..config(1)
    };
    let err = Trainer::new(wrong, open(&fine, 7, 1), vec![device()])
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("class count 3 (the model's num_classes is 1000)")
            && err.contains("codebook size 16 (the model's codebook_size is 1024)"),
        "{err}"
    );

    // A token id at or above the codebook size inside a shard (checksum kept valid, so only
    // the range check can catch it): the run stops with the file, record and value.
    let path = fine.join(shard_file_name(1));
    let mut bytes = std::fs::read(&path).unwrap();
    let tokens_at = 40 + 2 * PER_SHARD;
    let record = 4;
    let at = tokens_at + 2 * (record * N + 3);
    bytes[at..at + 2].copy_from_slice(&40u16.to_le_bytes());
    let crc = crc32(&bytes[40..]);
    bytes[32..36].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let mut trainer = Trainer::new(config(2), open(&fine, 7, 8), vec![device()]).unwrap();
    let err = trainer.run(&mut no_log()).unwrap_err().to_string();
    assert!(
        err.contains(&shard_file_name(1))
            && err.contains("record 4")
            && err.contains("token 40 is not below the codebook size 16"),
        "{err}"
    );
    assert_eq!(trainer.step(), 0, "no update from a bad batch");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn two_devices_in_bf16_read_the_shards_in_order_and_match_one_device() {
    // The official recipe's setting (bf16 products) on two devices: each step's two
    // micro-batches go to the two devices, are read from the stream in position order (no
    // seek), and give the updates of one device accumulating both. flex, since ndarray has
    // no bf16.
    let _serial = serial();
    let (dir, shards) = scratch_with_shards("multi");
    let steps = 4;
    let bf16 = || config(steps).with_precision(ComputePrecision::Bf16);
    let run = |config: TrainingConfig, devices: Vec<Device>| {
        let stream = open(&shards, 7, 1);
        let mut trainer = Trainer::new(config, stream.clone(), devices).unwrap();
        let losses = losses(&trainer.run(&mut no_log()).unwrap());
        assert_eq!(stream.seeks(), 0, "sequential reading never seeks");
        assert_eq!(stream.position(), steps * 4);
        losses
    };
    let one = run(bf16().with_accum_steps(2), vec![Device::flex()]);
    let two = run(bf16(), vec![Device::flex(), Device::flex()]);
    assert_eq!(one.len(), steps as usize);
    assert!(one.iter().all(|l| l.is_finite()));
    assert_eq!(
        one, two,
        "two devices = one device accumulating two micro-batches"
    );
    let fp32 = run(config(steps).with_accum_steps(2), vec![Device::flex()]);
    assert_ne!(one, fp32, "bf16 products change the rounding");
    for (a, b) in one.iter().zip(&fp32) {
        assert!((a - b).abs() <= 2e-2 * b, "bf16 {a} vs fp32 {b}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
