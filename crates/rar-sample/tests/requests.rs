//! Batches of independent requests (`RequestBatch`, `Sampler::sample_requests`) on a small
//! randomly initialised model: a request's tokens are the same alone, in any batch, and after
//! its batch-mates were dropped mid-way; bad requests are errors that name the request.

use burn::tensor::Device;
use rar_core::GuidanceSchedule;
use rar_model::{Rar, RarConfig};
use rar_sample::{RequestBatch, SampleRequest, Sampler};

fn small_model(device: &Device) -> Rar {
    device.seed(7);
    RarConfig::new(32, 2, 2, 64)
        .with_image_seq_len(16)
        .with_codebook_size(8)
        .with_num_classes(3)
        .with_dropout(0.0)
        .with_attn_drop(0.0)
        .init(device)
}

fn requests() -> Vec<SampleRequest> {
    let base = SampleRequest {
        class: 0,
        guidance: GuidanceSchedule::power_cosine(4.0, 2.0).unwrap(),
        temperature: 1.0,
        top_k: None,
        top_p: None,
        seed: 1,
    };
    vec![
        base.clone(),
        SampleRequest {
            class: 2,
            guidance: GuidanceSchedule::off(),
            top_k: Some(4),
            seed: 2,
            ..base.clone()
        },
        SampleRequest {
            class: 1,
            temperature: 0.7,
            top_p: Some(0.8),
            seed: 3,
            ..base.clone()
        },
        SampleRequest { seed: 4, ..base },
    ]
}

#[test]
fn a_request_draws_the_same_tokens_alone_or_in_any_batch() {
    for (name, device) in rar_testkit::devices() {
        let model = small_model(&device);
        let sampler = Sampler::new(&model);
        let reqs = requests();
        let alone: Vec<Vec<u32>> = reqs
            .iter()
            .map(|r| {
                sampler
                    .sample_requests(std::slice::from_ref(r))
                    .unwrap()
                    .remove(0)
            })
            .collect();
        for tokens in &alone {
            assert_eq!(tokens.len(), 16);
            assert!(tokens.iter().all(|&t| t < 8));
        }
        let together = sampler.sample_requests(&reqs).unwrap();
        assert_eq!(together, alone, "{name}: batched vs alone");
        let mut reversed = reqs.clone();
        reversed.reverse();
        let mut back = sampler.sample_requests(&reversed).unwrap();
        back.reverse();
        assert_eq!(back, alone, "{name}: reversed batch");
        // requests 0 and 3 differ only in the seed
        assert_ne!(alone[0], alone[3], "{name}: different seeds, same tokens");
    }
}

#[test]
fn dropping_requests_mid_batch_leaves_the_others_unchanged() {
    for (name, device) in rar_testkit::devices() {
        let model = small_model(&device);
        let reqs = requests();
        let alone = Sampler::new(&model).sample_requests(&reqs).unwrap();
        let mut batch = RequestBatch::start(&model, reqs.clone()).unwrap();
        assert_eq!(
            batch.cache_rows(),
            4 + 3,
            "three of four requests are guided"
        );
        for _ in 0..5 {
            assert!(!batch.step().unwrap());
        }
        assert_eq!(batch.tokens(2), &alone[2][..5]);
        let kept = batch.retain(|i, _| i == 0 || i == 2);
        assert_eq!(kept, [0, 2]);
        assert_eq!((batch.len(), batch.cache_rows()), (2, 4));
        assert_eq!(batch.steps_done(), 5);
        let tokens = batch.finish().unwrap();
        assert_eq!(tokens, [alone[0].clone(), alone[2].clone()], "{name}");

        let mut batch = RequestBatch::start(&model, reqs).unwrap();
        batch.step().unwrap();
        assert!(batch.retain(|_, _| false).is_empty());
        assert!(batch.is_done() && batch.is_empty());
    }
}

#[test]
fn bad_requests_are_errors_naming_the_request() {
    let device = Device::flex();
    let model = small_model(&device);
    let error_of = |edit: &dyn Fn(&mut Vec<SampleRequest>)| {
        let mut reqs = requests();
        edit(&mut reqs);
        RequestBatch::start(&model, reqs).err().unwrap().to_string()
    };
    let err = error_of(&|r| r[1].class = 3);
    assert!(
        err.contains("request 1") && err.contains("class 3"),
        "{err}"
    );
    let err = error_of(&|r| r[2].temperature = 0.0);
    assert!(
        err.contains("request 2") && err.contains("temperature"),
        "{err}"
    );
    let err = error_of(&|r| r.clear());
    assert!(err.contains("no requests"), "{err}");
}
