//! The fused LayerNorm, GELU and cross-entropy against burn's decomposed operations on the
//! same flex autodiff device: values and every gradient within rel 1e-5.

use burn::tensor::{Distribution, Int, Tensor, TensorData};

use crate::loss::decomposed_per_token_loss;
use crate::mlp::composed_gelu;
use crate::train_ops::{decomposed_layer_norm, modulate};

use super::*;

fn device() -> Device {
    Device::flex().autodiff()
}

/// ‖a − b‖ / ‖b‖ in f64 on the host.
fn rel_err<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f64 {
    let host = |t: Tensor<D>| t.inner().into_data().try_into_vec_as::<f32>().expect("f32");
    let (a, b) = (host(a), host(b));
    assert_eq!(a.len(), b.len());
    let num: f64 = a
        .iter()
        .zip(&b)
        .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
        .sum();
    let den: f64 = b.iter().map(|&b| (b as f64).powi(2)).sum();
    (num / den.max(1e-30)).sqrt()
}

fn random<const D: usize>(shape: [usize; D], std: f64) -> Tensor<D> {
    Tensor::random(shape, Distribution::Normal(0.0, std), &device()).require_grad()
}

#[test]
fn fused_ops_apply_to_flex_f32_only() {
    assert!(fused_ops_apply(&device(), DType::F32));
    assert!(fused_ops_apply(&Device::flex(), DType::F32));
    assert!(!fused_ops_apply(&device(), DType::F64));
}

/// The block's norms (affine + modulation, from a strided view as a transpose makes it), the
/// final layer's (no affine, modulated), and the QK-norms (4-d, affine, unmodulated), with
/// some inputs untracked.
#[test]
fn fused_layer_norm_matches_the_decomposed_path() {
    let (b, l, c) = (2, 37, 48);
    // `[B, C, L]` swapped: strided, like a head merge.
    let x_raw = random([b, c, l], 2.0);
    let x = || x_raw.clone().swap_dims(1, 2);
    let (gamma, beta) = (random([c], 1.0), random([c], 0.5));
    let (shift, scale) = (random([b, l, c], 0.7), random([b, l, c], 0.5));
    let w = Tensor::<3>::random([b, l, c], Distribution::Normal(0.0, 1.0), &device());
    let eps = 1e-6;
    for affine in [true, false] {
        let (g, bt) = if affine {
            (Some(gamma.clone()), Some(beta.clone()))
        } else {
            (None, None)
        };
        let fused = layer_norm(
            x(),
            g.clone(),
            bt.clone(),
            Some((shift.clone(), scale.clone())),
            eps,
        );
        let plain = modulate(
            decomposed_layer_norm(x(), g, bt, eps),
            shift.clone(),
            scale.clone(),
        );
        let err = rel_err(fused.clone(), plain.clone());
        assert!(err < 1e-5, "values, affine {affine}: {err}");
        let gf = (fused * w.clone()).sum().backward();
        let gp = (plain * w.clone()).sum().backward();
        for (name, t) in [("x", &x_raw), ("shift", &shift), ("scale", &scale)] {
            let err = rel_err(
                t.grad(&gf).expect("fused grad"),
                t.grad(&gp).expect("plain grad"),
            );
            assert!(err < 1e-5, "d{name}, affine {affine}: {err}");
        }
        if affine {
            for (name, t) in [("gamma", &gamma), ("beta", &beta)] {
                let err = rel_err(t.grad(&gf).unwrap(), t.grad(&gp).unwrap());
                assert!(err < 1e-5, "d{name}: {err}");
            }
        }
    }

    // QK-norm: `[B, L, H, d]`, affine, no modulation; `beta` untracked.
    let (h, d) = (3, 16);
    let q = random([b, l, h, d], 1.5);
    let (gq, bq) = (
        random([d], 1.0),
        Tensor::<1>::random([d], Distribution::Default, &device()),
    );
    let w = Tensor::<4>::random([b, l, h, d], Distribution::Normal(0.0, 1.0), &device());
    let fused = layer_norm(q.clone(), Some(gq.clone()), Some(bq.clone()), None, eps);
    let plain = decomposed_layer_norm(q.clone(), Some(gq.clone()), Some(bq), eps);
    assert!(
        rel_err(fused.clone(), plain.clone()) < 1e-5,
        "qk-norm values"
    );
    let (gf, gp) = (
        (fused * w.clone()).sum().backward(),
        (plain * w).sum().backward(),
    );
    let err = rel_err(q.grad(&gf).unwrap(), q.grad(&gp).unwrap());
    assert!(err < 1e-5, "qk-norm dq: {err}");
    let err = rel_err(gq.grad(&gf).unwrap(), gq.grad(&gp).unwrap());
    assert!(err < 1e-5, "qk-norm dgamma: {err}");
}

#[test]
fn fused_gelu_matches_the_composition() {
    // Large enough for the kernel's parallel path.
    let x = random([3, 129, 256], 2.0);
    let w = Tensor::<3>::random([3, 129, 256], Distribution::Normal(0.0, 1.0), &device());
    let (fused, plain) = (gelu(x.clone()), composed_gelu(x.clone()));
    let err = rel_err(fused.clone(), plain.clone());
    assert!(err < 1e-5, "values {err}");
    let gf = (fused * w.clone()).sum().backward();
    let gp = (plain * w).sum().backward();
    let err = rel_err(x.grad(&gf).unwrap(), x.grad(&gp).unwrap());
    assert!(err < 1e-5, "gradient {err}");
}

/// The loss as the model takes it: logits with one unlabelled position more than targets.
#[test]
fn fused_cross_entropy_matches_log_softmax_and_gather() {
    let (b, n, v) = (3, 20, 97);
    let logits = random([b, n + 1, v], 3.0);
    let labels: Vec<i64> = (0..b * n).map(|i| (i * 31 % v) as i64).collect();
    let labels = Tensor::<2, Int>::from_data(TensorData::new(labels, [b, n]), &device());
    let fused = cross_entropy(logits.clone(), labels.clone());
    let plain = decomposed_per_token_loss(logits.clone(), labels.clone());
    assert_eq!(fused.dims(), [b, n]);
    let err = rel_err(fused.clone(), plain.clone());
    assert!(err < 1e-5, "values {err}");
    let w = Tensor::<2>::random([b, n], Distribution::Normal(1.0, 0.5), &device());
    let gf = (fused * w.clone()).mean().backward();
    let gp = (plain * w).mean().backward();
    let err = rel_err(logits.grad(&gf).unwrap(), logits.grad(&gp).unwrap());
    assert!(err < 1e-5, "gradient {err}");
    // Without autodiff (validation) the same kernel gives the same values.
    let plain_device = Device::flex();
    let host = |t: Tensor<3>| Tensor::<3>::from_data(t.inner().into_data(), &plain_device);
    let labels = Tensor::<2, Int>::from_data(labels.into_data(), &plain_device);
    let fused = cross_entropy(host(logits.clone()), labels.clone());
    let plain = decomposed_per_token_loss(host(logits), labels);
    assert!(rel_err(fused, plain) < 1e-5);
}

/// Through the layer path (`precision::linear`, burn's `Linear` on every other backend): 3-d
/// input, a column block of a weight (a strided view, as `linear_chunks` makes it), and an
/// untracked input.
#[test]
fn fused_linear_matches_burns_linear() {
    use burn::tensor::module::linear as burn_linear;
    let (b, l, k, n) = (2, 33, 40, 3 * 24);
    let x = random([b, l, k], 1.0);
    let weight = random([k, n], 0.2);
    let bias = random([n], 0.5);
    let w = Tensor::<3>::random([b, l, 24], Distribution::Normal(0.0, 1.0), &device());
    let block = || weight.clone().slice([0..k, 24..48]);
    let cols = 24..48;
    let bias_block = || bias.clone().slice([cols.clone()]);
    let fused = linear(x.clone(), block(), Some(bias_block()));
    let plain = burn_linear(x.clone(), block(), Some(bias_block()));
    assert!(rel_err(fused.clone(), plain.clone()) < 1e-5, "values");
    let gf = (fused * w.clone()).sum().backward();
    let gp = (plain * w.clone()).sum().backward();
    let err = rel_err(x.grad(&gf).unwrap(), x.grad(&gp).unwrap());
    assert!(err < 1e-5, "dx {err}");
    let err = rel_err(weight.grad(&gf).unwrap(), weight.grad(&gp).unwrap());
    assert!(err < 1e-5, "dweight {err}");
    let err = rel_err(bias.grad(&gf).unwrap(), bias.grad(&gp).unwrap());
    assert!(err < 1e-5, "dbias {err}");
    // No bias, input untracked, large enough for gemm's threads.
    let x = Tensor::<2>::random([300, 200], Distribution::Normal(0.0, 1.0), &device());
    let weight = random([200, 160], 0.1);
    let w = Tensor::<2>::random([300, 160], Distribution::Normal(0.0, 1.0), &device());
    let fused = linear(x.clone(), weight.clone(), None);
    let plain = burn_linear(x.clone(), weight.clone(), None);
    assert!(
        rel_err(fused.clone(), plain.clone()) < 1e-5,
        "values without bias"
    );
    let gf = (fused * w.clone()).sum().backward();
    let gp = (plain * w).sum().backward();
    let err = rel_err(weight.grad(&gf).unwrap(), weight.grad(&gp).unwrap());
    assert!(err < 1e-5, "dweight without bias {err}");
    assert!(x.grad(&gf).is_none());
}

/// The fused dropout is `x ⊙ mask` for the mask its key gives (that of
/// [`rar_kernels::dropout_scale`] on ones), in value and gradient.
#[test]
fn fused_dropout_matches_the_product_with_its_mask() {
    let shape = [3, 70, 100];
    let x = random(shape, 1.0);
    let key = AttentionDropout { keep: 0.8, seed: 7 };
    let n = shape.iter().product::<usize>();
    let mut mask = vec![0f32; n];
    rar_kernels::dropout_scale(&vec![1f32; n], key, &mut mask).unwrap();
    let mask = Tensor::<3>::from_data(TensorData::new(mask, shape), &device());
    let w = Tensor::<3>::random(shape, Distribution::Normal(0.0, 1.0), &device());
    let (fused, plain) = (dropout(x.clone(), key), x.clone() * mask);
    assert!(rel_err(fused.clone(), plain.clone()) < 1e-7, "values");
    let gf = (fused * w.clone()).sum().backward();
    let gp = (plain * w).sum().backward();
    assert!(
        rel_err(x.grad(&gf).unwrap(), x.grad(&gp).unwrap()) < 1e-7,
        "gradient"
    );
}

/// The fused gated residual against `x + gate · y` in burn's operations: the same values bit
/// for bit and the same gradients of all three inputs, with `x` a strided view (as after a
/// head merge) and one input untracked.
#[test]
fn fused_gated_residual_matches_the_product_and_sum() {
    let (b, l, c) = (2, 37, 48);
    let x_raw = random([b, c, l], 1.0);
    let x = || x_raw.clone().swap_dims(1, 2);
    let (gate, y) = (random([b, l, c], 0.5), random([b, l, c], 1.0));
    let w = Tensor::<3>::random([b, l, c], Distribution::Normal(0.0, 1.0), &device());
    let fused = gated_residual(x(), gate.clone(), y.clone());
    let plain = x() + gate.clone() * y.clone();
    assert_eq!(rel_err(fused.clone(), plain.clone()), 0.0, "values");
    let gf = (fused * w.clone()).sum().backward();
    let gp = (plain * w.clone()).sum().backward();
    for (name, t) in [("x", &x_raw), ("gate", &gate), ("y", &y)] {
        let err = rel_err(
            t.grad(&gf).expect("fused grad"),
            t.grad(&gp).expect("plain grad"),
        );
        assert!(err < 1e-6, "grad {name}: {err}");
    }
    let untracked = y.clone().detach();
    let g = (gated_residual(x(), gate.clone(), untracked) * w)
        .sum()
        .backward();
    assert!(gate.grad(&g).is_some() && x_raw.grad(&g).is_some());
}

/// `Linear(x).chunk(n)` as one fused product against burn's product and `chunk`: every
/// chunk's values and the gradients of the input (a strided view), weight and bias, with one
/// chunk left out of the loss (its block of the assembled gradient must be zero) — twice in
/// one graph, so two products' gradients are assembled in the same backward pass.
#[test]
fn fused_linear_chunks_match_burns_product_and_chunk() {
    let (b, l, k, parts, width) = (2, 37, 48, 6, 16);
    let n = parts * width;
    let x_raw = random([b, k, l], 1.0);
    let x = || x_raw.clone().swap_dims(1, 2);
    let (w, bias) = (random([k, n], 0.3), random([n], 0.2));
    let (w2, bias2) = (random([k, n], 0.3), random([n], 0.2));
    let plain_chunks = |w: &Tensor<2>, bias: &Tensor<1>| {
        (x().matmul(w.clone().unsqueeze::<3>()) + bias.clone().unsqueeze::<3>()).chunk(parts, 2)
    };
    let weights: Vec<Tensor<3>> = (0..parts)
        .map(|_| Tensor::random([b, l, width], Distribution::Normal(0.0, 1.0), &device()))
        .collect();
    let loss = |chunks: Vec<Tensor<3>>, skip: usize| {
        chunks
            .into_iter()
            .zip(&weights)
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, (c, w))| (c * w.clone()).sum())
            .reduce(|a, b| a + b)
            .expect("chunks")
    };
    let fused = linear_chunks(x(), w.clone(), Some(bias.clone()), parts);
    let fused2 = linear_chunks(x(), w2.clone(), Some(bias2.clone()), parts);
    let plain = plain_chunks(&w, &bias);
    let plain2 = plain_chunks(&w2, &bias2);
    for (f, p) in fused.iter().zip(&plain) {
        let err = rel_err(f.clone(), p.clone());
        assert!(err < 1e-6, "values {err}");
    }
    let gf = (loss(fused, 2) + loss(fused2, 4)).backward();
    let gp = (loss(plain, 2) + loss(plain2, 4)).backward();
    let grads: [(&str, Tensor<3>, Tensor<3>); 1] = [(
        "x",
        x_raw.grad(&gf).expect("fused"),
        x_raw.grad(&gp).expect("plain"),
    )];
    let weights_grads = [("w", &w), ("w2", &w2)].map(|(name, t)| {
        (
            name,
            t.grad(&gf).expect("fused"),
            t.grad(&gp).expect("plain"),
        )
    });
    let bias_grads = [("bias", &bias), ("bias2", &bias2)].map(|(name, t)| {
        (
            name,
            t.grad(&gf).expect("fused"),
            t.grad(&gp).expect("plain"),
        )
    });
    for (name, f, p) in grads {
        let err = rel_err(f, p);
        assert!(err < 1e-5, "grad {name}: {err}");
    }
    for (name, f, p) in weights_grads {
        let err = rel_err(f, p);
        assert!(err < 1e-5, "grad {name}: {err}");
    }
    for (name, f, p) in bias_grads {
        let err = rel_err(f, p);
        assert!(err < 1e-5, "grad {name}: {err}");
    }
    // The skipped chunk's columns of the weight gradient are exactly zero.
    let dw = w
        .grad(&gf)
        .expect("fused")
        .into_data()
        .try_into_vec_as::<f32>()
        .expect("f32");
    assert!((0..k).all(|r| {
        dw[r * n + 2 * width..r * n + 3 * width]
            .iter()
            .all(|&v| v == 0.0)
    }));
}
