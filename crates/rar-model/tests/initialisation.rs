//! The reference initialisation (the official `modeling/rar.py`): truncated normal(0.02) weights and tables, zero
//! biases, LayerNorm 1/0, zero `cls_token`, adaLN-zero — and its consequence that every block
//! starts as the identity.

mod common;

use common::*;
use rar_model::{BatchOrders, RarConfig, RarInput};

fn stats(v: &[f32]) -> (f64, f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    let max = v.iter().map(|x| x.abs() as f64).fold(0.0, f64::max);
    (mean, var.sqrt(), max)
}

fn assert_std(name: &str, v: &[f32], std: f64, rel: f64) {
    let (mean, s, max) = stats(v);
    assert!(
        (s - std).abs() <= rel * std,
        "{name}: std {s}, expected {std}"
    );
    assert!(
        mean.abs() <= 4.0 * std / (v.len() as f64).sqrt() + 1e-7,
        "{name}: mean {mean}"
    );
    assert!(
        max <= 2.0,
        "{name}: |x| = {max} beyond the truncation bound"
    );
}

fn assert_const(name: &str, v: &[f32], c: f32) {
    assert!(v.iter().all(|&x| x == c), "{name}: not all {c}");
}

#[test]
fn initialisation_follows_the_reference() {
    let config = RarConfig::new(64, 2, 4, 256)
        .with_image_seq_len(16)
        .with_codebook_size(32)
        .with_num_classes(10);
    for (dev_name, device) in devices() {
        device.seed(1234);
        let m = config.init(&device);
        let v = |p: &burn::module::Param<burn::tensor::Tensor<1>>| values(p.val());
        let v2 = |p: &burn::module::Param<burn::tensor::Tensor<2>>| values(p.val());
        let v3 = |p: &burn::module::Param<burn::tensor::Tensor<3>>| values(p.val());
        // Tables: [1, 1040, 64] → 66,560 draws each: std within 2 %.
        assert_std("pos_embed", &v3(&m.pos_embed), 0.02, 0.02);
        assert_std(
            "target_aware_pos_embed",
            &v3(&m.target_aware_pos_embed),
            0.02,
            0.02,
        );
        assert_std(
            "timesteps_embeddings",
            &v3(&m.timesteps_embeddings),
            0.02,
            0.03,
        );
        assert_std("embeddings", &v2(&m.embeddings.weight), 0.02, 0.05);
        assert_std("lm_head.weight", &v2(&m.lm_head.weight), 0.02, 0.05);
        assert_const("lm_head.bias", &v(m.lm_head.bias.as_ref().unwrap()), 0.0);
        assert_const("cls_token", &v3(&m.cls_token), 0.0);
        assert_const(
            "final adaLN weight",
            &v2(&m.adaln_before_head.ada_ln_modulation.weight),
            0.0,
        );
        assert_const(
            "final adaLN bias",
            &v(m.adaln_before_head.ada_ln_modulation.bias.as_ref().unwrap()),
            0.0,
        );
        for (i, b) in m.blocks.iter().enumerate() {
            let t = |s: &str| format!("blocks.{i}.{s}");
            assert_std(&t("attn.qkv.weight"), &v2(&b.attn.qkv.weight), 0.02, 0.05);
            assert_std(&t("attn.proj.weight"), &v2(&b.attn.proj.weight), 0.02, 0.08);
            assert_std(&t("mlp.fc1.weight"), &v2(&b.mlp.fc1.weight), 0.02, 0.05);
            assert_std(&t("mlp.fc2.weight"), &v2(&b.mlp.fc2.weight), 0.02, 0.05);
            for (n, bias) in [
                ("qkv", &b.attn.qkv.bias),
                ("proj", &b.attn.proj.bias),
                ("fc1", &b.mlp.fc1.bias),
                ("fc2", &b.mlp.fc2.bias),
                ("adaLN", &b.ada_ln_modulation.bias),
            ] {
                assert_const(&t(n), &v(bias.as_ref().unwrap()), 0.0);
            }
            assert_const(&t("adaLN weight"), &v2(&b.ada_ln_modulation.weight), 0.0);
            for (n, ln) in [
                ("norm1", &b.norm1),
                ("norm2", &b.norm2),
                ("q_norm", &b.attn.q_norm),
                ("k_norm", &b.attn.k_norm),
            ] {
                assert_const(&t(&format!("{n}.gamma")), &v(&ln.gamma), 1.0);
                assert_const(&t(&format!("{n}.beta")), &v(ln.beta.as_ref().unwrap()), 0.0);
            }
        }

        // adaLN-zero ⇒ every block is the identity at initialisation.
        let (b, n) = (2, config.image_seq_len);
        let input = RarInput {
            tokens: ints(
                (0..(b * n) as i64).map(|i| i % 32).collect(),
                [b, n],
                &device,
            ),
            condition: ints(vec![33, 43], [b], &device),
            orders: BatchOrders::raster(b, n, &device).unwrap(),
        };
        let (_, trace) = m.forward_traced(input).unwrap();
        let x0 = values(trace.block_input.clone());
        for out in &trace.block_outputs {
            assert_eq!(
                values(out.clone()),
                x0,
                "{dev_name}: a block is not the identity at init"
            );
        }
    }
}
