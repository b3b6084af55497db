//! Sampling with a separate generation order per sample (`Sampler::sample_in_orders`), on a
//! small randomly initialised model: checked against the shared-order path and against
//! sampling each row alone.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Int, Tensor};
use rar_core::{GuidanceSchedule, OrderSampler, ScanOrder};
use rar_model::{Rar, RarConfig};
use rar_sample::{Sampler, SamplingConfig};

/// burn's device RNG is process-global: tests that seed it and draw from it must not
/// interleave (cargo runs the tests of a file on parallel threads).
static RNG_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    RNG_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Forces burn's lazily initialised parameters to be drawn now, so that later seeded
/// sampling calls see the same device-RNG stream.
struct Materialise;

impl ModuleVisitor for Materialise {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let _ = param.val();
    }
}

fn small_model(device: &Device) -> Rar {
    device.seed(7);
    let model = RarConfig::new(32, 2, 2, 64)
        .with_image_seq_len(16)
        .with_codebook_size(8)
        .with_num_classes(3)
        .with_dropout(0.0)
        .with_attn_drop(0.0)
        .init(device);
    model.visit(&mut Materialise);
    model
}

fn rows(t: Tensor<2, Int>) -> Vec<Vec<i64>> {
    let [_, n] = t.dims();
    let flat = t.into_data().convert::<i64>().try_to_vec::<i64>().unwrap();
    flat.chunks(n).map(<[i64]>::to_vec).collect()
}

fn options(guidance: f32, top_k: Option<usize>) -> SamplingConfig {
    SamplingConfig {
        guidance: if guidance > 0.0 {
            GuidanceSchedule::constant(guidance).unwrap()
        } else {
            GuidanceSchedule::off()
        },
        temperature: 1.0,
        top_k,
        top_p: None,
        order: ScanOrder::RowMajor,
        use_cache: true,
    }
}

/// Per-sample orders that all equal one scan order give exactly the tokens of that scan
/// order (same seed, same draws), with and without guidance.
#[test]
fn per_sample_orders_equal_to_a_scan_order_match_the_shared_path() {
    let _guard = lock();
    let device = Device::flex();
    let model = small_model(&device);
    let classes = [0, 1, 2, 1];
    for guidance in [0.0, 2.0] {
        let mut shared = options(guidance, None);
        shared.order = ScanOrder::SpiralIn;
        let expected = rows(
            Sampler::new(&model)
                .sample(&classes, &shared, Some(11))
                .unwrap(),
        );
        let spiral = ScanOrder::SpiralIn.positions_for_tokens(16).unwrap();
        let orders = vec![spiral; classes.len()];
        let got = rows(
            Sampler::new(&model)
                .sample_in_orders(&classes, &orders, &options(guidance, None), Some(11))
                .unwrap(),
        );
        assert_eq!(got, expected, "guidance {guidance}");
    }
}

/// With greedy decoding (top-k 1) each row of a batch with different random orders equals
/// that row sampled alone in its order: rows do not leak into each other and the tokens are
/// put back at the right raster positions.
#[test]
fn random_orders_per_row_are_independent() {
    let _guard = lock();
    let device = Device::flex();
    let model = small_model(&device);
    let classes = [2, 0, 1];
    let orders: Vec<Vec<usize>> = OrderSampler::raster(5, 16)
        .unwrap()
        .sample_batch(0, 0, classes.len(), 1.0)
        .into_iter()
        .map(|o| o.order)
        .collect();
    assert!(orders.iter().any(|o| *o != (0..16).collect::<Vec<_>>()));
    let greedy = options(1.5, Some(1));
    let mut sampler = Sampler::new(&model);
    let batch = rows(
        sampler
            .sample_in_orders(&classes, &orders, &greedy, Some(1))
            .unwrap(),
    );
    for (i, (&class, order)) in classes.iter().zip(&orders).enumerate() {
        let alone = rows(
            sampler
                .sample_in_orders(&[class], std::slice::from_ref(order), &greedy, Some(1))
                .unwrap(),
        );
        assert_eq!(batch[i], alone[0], "row {i}");
    }
}

#[test]
fn bad_orders_are_rejected_with_a_clear_error() {
    let _guard = lock();
    let device = Device::flex();
    let model = small_model(&device);
    let mut sampler = Sampler::new(&model);
    let raster: Vec<usize> = (0..16).collect();
    let err = sampler
        .sample_in_orders(
            &[0, 1],
            std::slice::from_ref(&raster),
            &options(0.0, None),
            None,
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("1 orders for 2 classes"), "{err}");
    let mut repeated = raster;
    repeated[3] = 4;
    let err = sampler
        .sample_in_orders(&[0], &[repeated], &options(0.0, None), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("order of sample 0"), "{err}");
}
