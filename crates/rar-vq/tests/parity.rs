//! Parity of the tokenizer against the reference fixtures (`maskgit_vqgan/`): encoder output,
//! quantised latent, token ids, decoded images and intermediate activations, loading both the
//! `.bin` and the `.safetensors` weights, on every CPU backend.
//!
//! The configuration is derived from the checkpoint's shapes, never written down here, so
//! the same test runs against any fixture set of this layout.

mod common;

use common::*;
use rar_vq::{Tokenizer, tensor_to_images};

/// Encoder, quantiser and decoder activations against the reference. CPU backends and
/// lavapipe measure ≤ 3.8e-6; the GPU bound leaves room for a real GPU's convolution and
/// reduction order.
const TOL: Tolerance = Tolerance::new(1e-4, 5e-4);

fn check(name: &str, got: &[f64], want: &[f64], dev_name: &str) -> f64 {
    let e = rel_err(got, want);
    let tol = TOL.on(dev_name);
    println!("  {name}: rel err {e:.3e}");
    assert!(
        e <= tol,
        "{name} on {dev_name}: relative error {e:.3e} > {tol:e}"
    );
    e
}

#[test]
fn tokenizer_matches_reference_fixtures() {
    let Some(dir) = vq_fixture_dir() else { return };
    let fx = read_fixtures(&dir.join("fixtures.safetensors"));
    let mut worst = std::collections::BTreeMap::<&str, f64>::new();
    for (dev_name, device) in devices() {
        for file in ["model.bin", "model.safetensors"] {
            println!("{dev_name} / {file}");
            let (tok, config) = Tokenizer::from_file(dir.join(file), &device)
                .unwrap_or_else(|e| panic!("loading {file}: {e}"));
            println!("  derived {config:?}");
            let images = fx["images"].tensor4(&device);

            // Encoder output and intermediate activations (first image only).
            let z = tok.encode_latent(images.clone()).unwrap();
            let e = check("z", &values(z.clone()), &fx["z"].values, dev_name);
            let w = worst.entry("z").or_default();
            *w = w.max(e);
            let first = images.clone().narrow(0, 0, 1);
            let (conv_in, levels) = tok.encoder.forward_levels(first);
            check(
                "enc_conv_in",
                &values(conv_in),
                &fx["enc_conv_in"].values,
                dev_name,
            );
            for (i, level) in levels.into_iter().enumerate() {
                if let Some(want) = fx.get(&format!("enc_down{i}")) {
                    check(
                        &format!("enc_down{i}"),
                        &values(level),
                        &want.values,
                        dev_name,
                    );
                }
            }

            // Quantisation: ids identical except at near-ties; z_q.
            let (ids, z_q) = tok.encode_with_latents(images.clone()).unwrap();
            let ids = int_values(ids);
            let want_ids: Vec<i64> = fx["token_ids"].values.iter().map(|&v| v as i64).collect();
            let margins = &fx["distance_margin"].values;
            let mut near_ties = 0;
            for (t, ((&got, &want), &margin)) in ids.iter().zip(&want_ids).zip(margins).enumerate()
            {
                // A near-tie: the two best codes are closer than the f32 rounding of distances.
                let tie = margin < 1e-3;
                near_ties += usize::from(tie);
                assert!(
                    got == want || tie,
                    "token {t}: id {got}, reference {want} (margin {margin})"
                );
            }
            let mismatches = ids.iter().zip(&want_ids).filter(|(a, b)| a != b).count();
            println!("  token ids: {mismatches} mismatches, {near_ties} near-ties (margin < 1e-3)");
            if mismatches == 0 {
                let e = check("z_q", &values(z_q), &fx["z_q"].values, dev_name);
                let w = worst.entry("z_q").or_default();
                *w = w.max(e);
            }

            // Decoder: from the fixture's ids and from random ids, raw and clamped.
            for (ids_key, key) in [("token_ids", "decoded"), ("random_ids", "decoded_random")] {
                let ids = fx[ids_key].ids(&device);
                let raw = tok.decode_raw(ids.clone()).unwrap();
                check(
                    &format!("{key}_raw"),
                    &values(raw),
                    &fx[&format!("{key}_raw")].values,
                    dev_name,
                );
                let out = tok.decode(ids).unwrap();
                let e = check(key, &values(out.clone()), &fx[key].values, dev_name);
                let w = worst.entry(key).or_default();
                *w = w.max(e);
                // 8-bit conversion: exactly the f32 `floor(255·clamp(x))` of our output, and at
                // most one level from the reference's (only where the two floats straddle a
                // step boundary).
                let ours = values(out.clone());
                let imgs = tensor_to_images(out).unwrap();
                let [b, c, h, wd]: [usize; 4] = fx[key].shape.clone().try_into().unwrap();
                let mut off_by_one = 0;
                for (i, img) in imgs.iter().enumerate().take(b) {
                    for ch in 0..c {
                        for y in 0..h {
                            for x in 0..wd {
                                let idx = ((i * c + ch) * h + y) * wd + x;
                                let got = img.get_pixel(x as u32, y as u32)[ch];
                                let exact = ((ours[idx] as f32).clamp(0.0, 1.0) * 255.0) as u8;
                                assert_eq!(got, exact, "{key} pixel {i},{ch},{y},{x}");
                                let want =
                                    ((fx[key].values[idx] as f32).clamp(0.0, 1.0) * 255.0) as u8;
                                assert!(got.abs_diff(want) <= 1, "{key} pixel {i},{ch},{y},{x}");
                                off_by_one += usize::from(got != want);
                            }
                        }
                    }
                }
                println!(
                    "  {key} uint8: {off_by_one} of {} values one level off",
                    ours.len()
                );
                assert!(
                    off_by_one * 1000 <= ours.len(),
                    "too many uint8 differences"
                );
            }
            let mid = tok
                .decoder
                .forward_mid(fx["z_q"].tensor4(&device).narrow(0, 0, 1));
            check(
                "dec_mid",
                &values(mid.clone()),
                &fx["dec_mid"].values,
                dev_name,
            );
            let mut h = mid;
            let levels = tok.decoder.up.len();
            for (level, up) in tok.decoder.up.iter().enumerate().rev() {
                h = up.forward(h);
                let key = if level + 1 == levels {
                    "dec_up_last_idx".to_string()
                } else {
                    format!("dec_up{level}")
                };
                if let Some(want) = fx.get(&key) {
                    check(&key, &values(h.clone()), &want.values, dev_name);
                }
            }
        }
    }
    println!("worst relative errors: {worst:?}");
}
