//! The packed host decoder ([`PackedDecoder`], through [`Decoder`]) against the independent
//! reference (the official sampler's per-step logits in `sampling.safetensors`) and against
//! the tensor path: f32 weights within the parity tolerance, bf16 weights within their
//! measured error, per-row orders, rows dropped mid-batch, and misuse as errors.

mod common;

use burn::tensor::Device;
use common::*;
use rar_core::rng::Xoshiro256PlusPlus;
use rar_model::{
    DecodeCache, DecodeOrder, Decoder, PackedDecoder, PackedPrecision, Rar, RarModelError,
};

/// f32 packed logits against the reference (‖a − b‖/‖b‖), as the tensor path's bound.
const TOL: f64 = 1e-4;
/// Packed against tensor decoding of the same model: the same function, other summation order.
const SAME_TOL: f64 = 1e-5;
/// bf16 weights (8 significant bits) against the f32 reference: measured ≤ 4e-3 on the
/// fixtures; the bound leaves room for other fixture sets.
const BF16_TOL: f64 = 2e-2;

/// Replays the recorded guided sampling (conditional rows, then as many unconditional rows)
/// through `decoder` and returns the worst relative error of the conditional and
/// unconditional logits against the reference over all steps.
fn replay_reference(decoder: Decoder<'_>, fx: &Fixture, device: &Device) -> f64 {
    let model = decoder.model();
    let (_, cond_ids) = fx.i64("cond_ids");
    let none_id = fx.i64("none_id").1[0];
    let (tok_shape, tokens) = fx.i64("tokens");
    let (b, n) = (tok_shape[0], tok_shape[1]);
    let v = model.config().codebook_size;
    let (_, want_c) = fx.f32("cond_logits");
    let (_, want_u) = fx.f32("uncond_logits");
    let mut ids = cond_ids.clone();
    ids.extend(std::iter::repeat_n(none_id, b));
    let plan = model.decode_plan(&DecodeOrder::raster(n).unwrap()).unwrap();
    let mut cache = decoder.new_cache(2 * b);
    let mut logits = decoder
        .prefill(ints(ids, [2 * b], device), &plan, &mut cache)
        .unwrap();
    let mut worst = 0f64;
    for s in 0..n {
        let got = values(logits.clone());
        let (c, u) = got.split_at(b * v);
        let step = |w: &[f32]| w[s * b * v..(s + 1) * b * v].to_vec();
        worst = worst.max(rel_err(c, &step(&want_c)));
        worst = worst.max(rel_err(u, &step(&want_u)));
        if s + 1 < n {
            let mut fed: Vec<i64> = (0..b).map(|r| tokens[r * n + s]).collect();
            fed.extend_from_within(..);
            logits = decoder
                .step(ints(fed, [2 * b], device), &plan, &mut cache)
                .unwrap();
        }
    }
    assert_eq!(cache.len(), n + 1);
    worst
}

#[test]
fn packed_decoding_replays_the_reference_in_f32_and_bf16() {
    for dir in model_dirs() {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let fx = Fixture::open(dir.join("sampling.safetensors"));
        for (dev_name, device) in devices() {
            let model = fixture_model(&dir, &device);
            let f32s = PackedDecoder::new(&model, PackedPrecision::F32).unwrap();
            let bf16 = PackedDecoder::new(&model, PackedPrecision::Bf16).unwrap();
            assert_eq!(
                bf16.streamed_bytes() * 2,
                f32s.streamed_bytes() + bf16_bias(&model)
            );
            let e32 = replay_reference(Decoder::packed(&model, &f32s).unwrap(), &fx, &device);
            let e16 = replay_reference(Decoder::packed(&model, &bf16).unwrap(), &fx, &device);
            let tensor = replay_reference(Decoder::from(&model), &fx, &device);
            eprintln!(
                "{name} {dev_name}: worst rel err vs reference: packed f32 {e32:.2e}, packed bf16 \
                 {e16:.2e}, tensor path {tensor:.2e}"
            );
            assert!(e32 <= TOL, "{name} {dev_name}: packed f32 {e32:.3e}");
            assert!(e16 <= BF16_TOL, "{name} {dev_name}: packed bf16 {e16:.3e}");
        }
    }
}

/// The biases stay f32 in a bf16 decoder: bytes the halving does not apply to.
fn bf16_bias(model: &Rar) -> usize {
    let c = model.config();
    let per_block =
        6 * c.hidden_size + 3 * c.hidden_size + c.hidden_size + c.intermediate_size + c.hidden_size;
    4 * (c.num_layers * per_block + 2 * c.hidden_size + c.codebook_size)
}

/// Steps both decoders with the same tokens in per-row orders, dropping rows midway, and
/// compares every step's logits.
#[test]
fn packed_and_tensor_decoding_agree_in_per_row_orders_and_after_dropping_rows() {
    let Some(dir) = model_dirs().into_iter().next() else {
        return;
    };
    let device = Device::flex();
    let model = fixture_model(&dir, &device);
    let config = model.config().clone();
    let (n, v) = (config.image_seq_len, config.codebook_size);
    let space = config.token_space();
    // Four rows: two classes, a repeated class and "none" (rows sharing a condition share
    // the packed decoder's adaLN product).
    let ids: Vec<i64> = [
        space.class_id(1).unwrap(),
        space.class_id(3).unwrap(),
        space.class_id(1).unwrap(),
        space.none_id(),
    ]
    .iter()
    .map(|&i| i as i64)
    .collect();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
    let orders: Vec<Vec<usize>> = (0..ids.len())
        .map(|_| {
            let mut o: Vec<usize> = (0..n).collect();
            rng.shuffle(&mut o);
            o
        })
        .collect();
    let plan = model
        .decode_plan(&DecodeOrder::per_row(orders.clone()).unwrap())
        .unwrap();
    let packed = PackedDecoder::new(&model, PackedPrecision::F32).unwrap();
    let decoders = [
        Decoder::from(&model),
        Decoder::packed(&model, &packed).unwrap(),
    ];
    let mut caches: Vec<DecodeCache> = decoders.iter().map(|d| d.new_cache(ids.len())).collect();
    let mut logits: Vec<Vec<f32>> = decoders
        .iter()
        .zip(&mut caches)
        .map(|(d, c)| {
            values(
                d.prefill(ints(ids.clone(), [4], &device), &plan, c)
                    .unwrap(),
            )
        })
        .collect();
    let mut rows = 4;
    let mut plan = plan;
    let mut kept_orders = orders;
    for s in 0..n - 1 {
        let e = rel_err(&logits[1], &logits[0]);
        assert!(e <= SAME_TOL, "step {s}: packed vs tensor {e:.3e}");
        if s == n / 2 {
            // Drop rows 0 and 2 (keep 3 then 1, reordered): both caches shrink.
            let keep = [3usize, 1];
            for c in &mut caches {
                c.retain_rows(&keep).unwrap();
            }
            kept_orders = keep.iter().map(|&r| kept_orders[r].clone()).collect();
            plan = model
                .decode_plan(&DecodeOrder::per_row(kept_orders.clone()).unwrap())
                .unwrap();
            rows = keep.len();
        }
        let fed: Vec<i64> = (0..rows).map(|r| ((s * 7 + r * 13) % v) as i64).collect();
        logits = decoders
            .iter()
            .zip(&mut caches)
            .map(|(d, c)| {
                values(
                    d.step(ints(fed.clone(), [rows], &device), &plan, c)
                        .unwrap(),
                )
            })
            .collect();
    }
    assert!(rel_err(&logits[1], &logits[0]) <= SAME_TOL);
    assert_eq!(caches[1].batch_size(), 2);
}

#[test]
fn packed_decoder_misuse_is_an_error() {
    let Some(dir) = model_dirs().into_iter().next() else {
        return;
    };
    let device = Device::flex();
    let model = fixture_model(&dir, &device);
    let config = model.config().clone();
    let packed = PackedDecoder::new(&model, PackedPrecision::F32).unwrap();
    let n = config.image_seq_len;
    let plan = model.decode_plan(&DecodeOrder::raster(n).unwrap()).unwrap();
    let mut cache = packed.new_cache(2);
    let none = config.token_space().none_id() as i64;

    let e = packed.step(&[0, 0], &mut cache).unwrap_err();
    assert!(e.to_string().contains("before prefill"), "{e}");
    let e = packed.prefill(&[none], &plan, &mut cache).unwrap_err();
    assert!(e.to_string().contains("1 ids for a batch of 2"), "{e}");
    let vocab = config.vocab_size() as i64;
    let e = packed
        .prefill(&[none, vocab], &plan, &mut cache)
        .unwrap_err();
    assert!(
        e.to_string().contains(&format!("condition id {vocab}")),
        "{e}"
    );
    packed.prefill(&[none, none], &plan, &mut cache).unwrap();
    let e = packed
        .prefill(&[none, none], &plan, &mut cache)
        .unwrap_err();
    assert!(e.to_string().contains("reset()"), "{e}");
    let v = config.codebook_size as i64;
    let e = packed.step(&[0, v], &mut cache).unwrap_err();
    assert!(e.to_string().contains(&format!("image token {v}")), "{e}");
    let e = packed.step(&[0], &mut cache).unwrap_err();
    assert!(e.to_string().contains("1 tokens for a cache of 2"), "{e}");
    for _ in 0..n - 1 {
        packed.step(&[0, 1], &mut cache).unwrap();
    }
    packed.step(&[0, 1], &mut cache).unwrap(); // the training-only last slot
    let e = packed.step(&[0, 1], &mut cache).unwrap_err();
    assert!(
        matches!(e, RarModelError::Cache(_)) && e.to_string().contains("full"),
        "{e}"
    );
    assert!(cache.retain_rows(&[2]).is_err() && cache.retain_rows(&[]).is_err());

    // A tensor cache given to a packed decoder (and the reverse) is refused.
    let dec = Decoder::packed(&model, &packed).unwrap();
    let mut tensor_cache = Decoder::from(&model).new_cache(2);
    let e = dec
        .prefill(
            ints(vec![none, none], [2], &device),
            &plan,
            &mut tensor_cache,
        )
        .unwrap_err();
    assert!(e.to_string().contains("other kind of decoder"), "{e}");
    // A packed decoder of another configuration is refused.
    let mut deeper = config.clone();
    deeper.num_layers += 1;
    let other = deeper.init(&device);
    assert!(Decoder::packed(&other, &packed).is_err());
}
