//! The batching engine on a small random model: jobs submitted together are batched and give
//! the same images as the library sampler run on each alone; a full queue refuses; dropping a
//! ticket cancels a waiting or a running job and the others are unaffected.

mod common;

use std::time::Duration;

use burn::tensor::Device;
use common::wait_until;
use rar_core::GuidanceSchedule;
use rar_model::{Rar, RarConfig};
use rar_sample::{SampleRequest, Sampler};
use rar_serve::{Engine, EngineConfig, EngineError};

fn small_model(device: &Device) -> Rar {
    model_of(device, 64)
}

fn model_of(device: &Device, tokens: usize) -> Rar {
    sized_model(device, tokens, 32, 2)
}

fn sized_model(device: &Device, tokens: usize, hidden: usize, depth: usize) -> Rar {
    device.seed(7);
    RarConfig::new(hidden, depth, 2, 2 * hidden)
        .with_image_seq_len(tokens)
        .with_codebook_size(8)
        .with_num_classes(3)
        .with_dropout(0.0)
        .with_attn_drop(0.0)
        .init(device)
}

fn engine_with(model: Rar, max_batch_images: usize, max_jobs: usize, queue: usize) -> Engine {
    let config = EngineConfig {
        max_batch_images,
        max_jobs_per_batch: max_jobs,
        queue_capacity: queue,
        ..EngineConfig::default()
    };
    Engine::start(model, config).unwrap()
}

fn request(class: usize, seed: u64) -> SampleRequest {
    SampleRequest {
        class,
        guidance: GuidanceSchedule::power_cosine(3.0, 1.0).unwrap(),
        temperature: 1.0,
        top_k: None,
        top_p: None,
        seed,
    }
}

#[test]
fn concurrent_jobs_are_batched_and_match_the_library_sampler() {
    let device = Device::flex();
    let model = small_model(&device);
    let jobs: Vec<Vec<SampleRequest>> = vec![
        vec![request(0, 1), request(1, 2)],
        vec![SampleRequest {
            guidance: GuidanceSchedule::off(),
            top_k: Some(3),
            ..request(2, 3)
        }],
        vec![request(1, 4)],
    ];
    let expected: Vec<Vec<Vec<u32>>> = {
        let sampler = Sampler::new(&model);
        jobs.iter()
            .map(|job| {
                job.iter()
                    .map(|r| {
                        sampler
                            .sample_requests(std::slice::from_ref(r))
                            .unwrap()
                            .remove(0)
                    })
                    .collect()
            })
            .collect()
    };
    let engine = Engine::start(model, EngineConfig::default()).unwrap();
    // a first job keeps the worker busy while the three others queue up behind it
    let first = engine.submit(vec![request(0, 99)], Some(1)).unwrap();
    first
        .next_progress(Duration::from_secs(60))
        .expect("the first job runs");
    let tickets: Vec<_> = jobs
        .iter()
        .map(|j| engine.submit(j.clone(), None).unwrap())
        .collect();
    first.wait().unwrap();
    let got: Vec<Vec<Vec<u32>>> = tickets.into_iter().map(|t| t.wait().unwrap()).collect();
    assert_eq!(got, expected);
    let s = engine.snapshot();
    assert_eq!(
        s.batches, 2,
        "the three waiting jobs ran as one batch: {s:?}"
    );
    assert_eq!((s.jobs_completed, s.images_completed), (4, 5));
}

#[test]
fn one_job_per_batch_runs_them_in_turn_with_the_same_images() {
    let device = Device::flex();
    let model = small_model(&device);
    let config = EngineConfig {
        max_jobs_per_batch: 1,
        ..EngineConfig::default()
    };
    let batched = Engine::start(model.clone(), EngineConfig::default()).unwrap();
    let serial = Engine::start(model, config).unwrap();
    let submit = |engine: &Engine| {
        let t: Vec<_> = (0..3)
            .map(|i| {
                engine
                    .submit(vec![request(i % 3, 10 + i as u64)], None)
                    .unwrap()
            })
            .collect();
        t.into_iter().map(|t| t.wait().unwrap()).collect::<Vec<_>>()
    };
    assert_eq!(submit(&serial), submit(&batched));
    assert_eq!(serial.snapshot().batches, 3);
}

#[test]
fn a_full_queue_refuses_and_bad_jobs_are_named() {
    let device = Device::flex();
    let engine = engine_with(small_model(&device), 2, 1, 2);
    let running = engine.submit(vec![request(0, 1)], Some(1)).unwrap();
    running
        .next_progress(Duration::from_secs(60))
        .expect("it runs");
    let waiting: Vec<_> = (0..2)
        .map(|i| engine.submit(vec![request(0, i)], None).unwrap())
        .collect();
    let err = engine.submit(vec![request(0, 5)], None).err().unwrap();
    assert_eq!(err, EngineError::QueueFull { capacity: 2 });
    assert_eq!(engine.snapshot().jobs_rejected, 1);

    let err = engine.submit(vec![request(0, 1); 3], None).err().unwrap();
    assert_eq!(
        err,
        EngineError::TooManyImages {
            images: 3,
            limit: 2
        }
    );
    let err = engine
        .submit(vec![request(0, 1), request(3, 1)], None)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("image 1") && err.contains("class 3"), "{err}");
    let bad = SampleRequest {
        temperature: f32::NAN,
        ..request(0, 1)
    };
    let err = engine.submit(vec![bad], None).err().unwrap().to_string();
    assert!(err.contains("temperature"), "{err}");
    let err = engine.submit(Vec::new(), None).err().unwrap().to_string();
    assert!(err.contains("at least one image"), "{err}");
    drop(running);
    for t in waiting {
        t.wait().unwrap();
    }
}

#[test]
fn cancelled_jobs_free_their_slot() {
    let device = Device::flex();
    // 256 tokens per image and a wider model, so a batch lasts long enough (≈ 0.1–0.5 s) to
    // be cancelled between steps for sure
    let model = sized_model(&device, 256, 128, 4);
    let alone = Sampler::new(&model)
        .sample_requests(&[request(2, 8)])
        .unwrap();
    let engine = engine_with(model, 4, usize::MAX, 2);
    let blocker = engine.submit(vec![request(0, 1)], Some(1)).unwrap();
    blocker
        .next_progress(Duration::from_secs(60))
        .expect("it runs");
    // a waiting job that is dropped leaves the queue at once, making room for another
    let waiting = engine.submit(vec![request(1, 2)], None).unwrap();
    let kept = engine.submit(vec![request(2, 8)], None).unwrap();
    assert_eq!(engine.snapshot().queue_depth, 2);
    assert!(matches!(
        engine.submit(vec![request(1, 3)], None),
        Err(EngineError::QueueFull { .. })
    ));
    drop(waiting);
    assert_eq!(engine.snapshot().queue_depth, 1);
    let victim = engine
        .submit(vec![request(1, 4), request(0, 5)], Some(1))
        .unwrap();
    // the running job that is dropped ends its batch; the next one holds `kept` and `victim`
    drop(blocker);
    victim
        .next_progress(Duration::from_secs(60))
        .expect("the second batch runs");
    assert_eq!(engine.snapshot().running_images, 3);
    drop(victim);
    wait_until("the victim's rows to leave", || {
        engine.snapshot().running_images <= 1
    });
    assert_eq!(
        kept.wait().unwrap(),
        alone,
        "the batch-mate of a cancelled job"
    );
    let s = engine.snapshot();
    assert_eq!(s.jobs_cancelled, 3, "{s:?}");
    assert_eq!((s.jobs_completed, s.batches), (1, 2), "{s:?}");
}

#[test]
fn a_gather_window_lets_jobs_arriving_just_after_share_the_batch_and_a_full_batch_starts_at_once() {
    let device = Device::flex();
    let config = EngineConfig {
        gather_window: Duration::from_millis(500),
        ..EngineConfig::default()
    };
    let engine = Engine::start(small_model(&device), config).unwrap();
    let first = engine.submit(vec![request(0, 1)], None).unwrap();
    std::thread::sleep(Duration::from_millis(30));
    let second = engine
        .submit(vec![request(1, 2), request(2, 3)], None)
        .unwrap();
    first.wait().unwrap();
    second.wait().unwrap();
    assert_eq!(engine.snapshot().batches, 1);
    assert_eq!(engine.snapshot().images_completed, 3);

    // A batch that is full does not wait out the window (a minute here).
    let config = EngineConfig {
        max_batch_images: 2,
        gather_window: Duration::from_secs(60),
        ..EngineConfig::default()
    };
    let engine = Engine::start(small_model(&device), config).unwrap();
    let ticket = engine
        .submit(vec![request(0, 1), request(1, 2)], None)
        .unwrap();
    let result = ticket.wait_timeout(Duration::from_secs(30));
    assert!(
        result.is_some(),
        "a full batch waited for the gather window"
    );
}
