//! Times KV-cached decoding against the cache-free recompute on a randomly initialised model
//! of RAR-B width, showing that a cached step costs about the same at every position.
//!
//! ```text
//! cargo run -p rar-model --example decode_speed [flex|ndarray] [layers] [batch]
//! ```

use std::time::Instant;

use burn::tensor::{Device, Int, Tensor, TensorData};
use rar_model::{DecodeOrder, RarConfig, RarPreset};

fn device(name: &str) -> Device {
    match name {
        #[cfg(feature = "ndarray")]
        "ndarray" =>
        {
            #[allow(deprecated)]
            Device::ndarray()
        }
        "flex" => Device::flex(),
        other => panic!("unknown or disabled device {other}"),
    }
}

fn main() -> rar_model::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let device = device(args.get(1).map_or("flex", String::as_str));
    let layers: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(6);
    let batch: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(8);
    let config = RarConfig {
        num_layers: layers.max(1),
        ..RarPreset::B.config()
    };
    let model = config.init(&device);
    let n = config.image_seq_len;
    let space = config.token_space();
    let cond: Vec<i64> = (0..batch)
        .map(|i| space.class_id(i % 1000).unwrap() as i64)
        .collect();
    let cond = Tensor::<1, Int>::from_data(TensorData::new(cond, [batch]), &device);

    let plan = model.decode_plan(&DecodeOrder::raster(n)?)?;
    let mut cache = model.new_cache(batch, &device);
    let start = Instant::now();
    let mut logits = model.prefill(cond.clone(), &plan, &mut cache)?;
    let mut step_ms = Vec::with_capacity(n);
    let mut generated: Vec<Tensor<1, Int>> = Vec::new();
    for _ in 1..n {
        let t0 = Instant::now();
        let tokens: Tensor<1, Int> = logits.argmax(1).squeeze_dim(1);
        generated.push(tokens.clone());
        logits = model.step(tokens, &plan, &mut cache)?;
        let _ = logits.clone().into_data(); // wait for the step
        step_ms.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    let total = start.elapsed().as_secs_f64();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    println!(
        "cached: {layers} blocks × width {}, batch {batch}: {total:.2} s for {n} tokens; \
         ms/step first 16 = {:.1}, last 16 = {:.1}",
        config.hidden_size,
        mean(&step_ms[..16]),
        mean(&step_ms[step_ms.len() - 16..])
    );

    // Cache-free recompute of the last step, for comparison.
    let prefix = Tensor::stack::<2>(generated, 1);
    let t0 = Instant::now();
    let _ = model.forward_prefix(cond, prefix, &plan)?.into_data();
    println!(
        "uncached: one step at position {n} costs {:.1} ms",
        t0.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}
