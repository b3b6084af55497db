//! The statistics against numpy + scipy used the way the ADM evaluator uses them
//! (`scripts/eval_fixtures.py` wrote `tests/fixtures/statistics.json`: random correlated
//! features, random class probabilities).

use rar_eval::{EvalError, Gaussian, MomentAccumulator, inception_score};
use serde_json::Value;

fn fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/statistics.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect(path)).expect("fixture JSON")
}

fn f64s(v: &Value, key: &str) -> Vec<f64> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key}"))
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn f32s(v: &Value, key: &str) -> Vec<f32> {
    f64s(v, key).into_iter().map(|x| x as f32).collect()
}

fn rel(got: &[f64], want: &[f64]) -> f64 {
    let diff: f64 = got.iter().zip(want).map(|(a, b)| (a - b).powi(2)).sum();
    let norm: f64 = want.iter().map(|b| b * b).sum();
    (diff / norm).sqrt()
}

#[test]
fn moments_match_numpy_streamed_in_any_batches() {
    let fx = fixture();
    let dim = fx["dim"].as_u64().unwrap() as usize;
    for name in ["a", "b"] {
        let rows = f32s(&fx, name);
        let whole = Gaussian::of_features(&rows, dim).unwrap();
        let mean_err = rel(whole.mean(), &f64s(&fx, &format!("mean_{name}")));
        let cov_err = rel(whole.cov(), &f64s(&fx, &format!("cov_{name}")));
        println!("{name}: mean rel err {mean_err:.2e}, cov rel err {cov_err:.2e}");
        assert!(
            mean_err <= 1e-12 && cov_err <= 1e-12,
            "{name}: {mean_err:e} {cov_err:e}"
        );
        // Batches of 7 rows (the last one shorter) give the same moments.
        let mut acc = MomentAccumulator::new(dim);
        for batch in rows.chunks(7 * dim) {
            acc.add(batch).unwrap();
        }
        let streamed = acc.finish().unwrap();
        assert_eq!(streamed.samples(), (rows.len() / dim) as u64);
        assert!(rel(streamed.cov(), whole.cov()) <= 1e-13);
        assert!(rel(streamed.mean(), whole.mean()) <= 1e-14);
    }
}

#[test]
fn frechet_distance_matches_scipy_sqrtm() {
    let fx = fixture();
    let dim = fx["dim"].as_u64().unwrap() as usize;
    let a = Gaussian::of_features(&f32s(&fx, "a"), dim).unwrap();
    let b = Gaussian::of_features(&f32s(&fx, "b"), dim).unwrap();
    let fid = a.frechet_distance(&b).unwrap();
    let want = fx["fid"].as_f64().unwrap();
    let err = (fid - want).abs() / want;
    let evaluator = fx["fid_mean32"].as_f64().unwrap();
    println!(
        "fid {fid} (scipy {want}, rel err {err:.2e}); the evaluator's float32 mean moves it by {:.2e}",
        (evaluator - want).abs() / want
    );
    assert!(err <= 1e-9, "fid {fid} vs {want}");
    assert!(
        (b.frechet_distance(&a).unwrap() - fid).abs() <= 1e-9 * want,
        "symmetric"
    );
    // Fewer samples than features: a singular covariance, where scipy's root turns complex.
    let c = Gaussian::of_features(&f32s(&fx, "c"), dim).unwrap();
    let singular = a.frechet_distance(&c).unwrap();
    let want_singular = fx["fid_singular"].as_f64().unwrap();
    let err_singular = (singular - want_singular).abs() / want_singular;
    println!("singular: fid {singular} (scipy {want_singular}, rel err {err_singular:.2e})");
    assert!(
        err_singular <= 1e-6,
        "singular fid {singular} vs {want_singular}"
    );
    // scipy leaves a rounding residue on identical statistics; ours must be as close to 0.
    let own = a.frechet_distance(&a).unwrap();
    let scipy_self = fx["fid_self"].as_f64().unwrap();
    println!("self-distance {own:e} (scipy {scipy_self:e})");
    assert!(own.abs() <= 1e-9 * want && scipy_self.abs() <= 1e-9 * want);
}

#[test]
fn inception_score_matches_the_evaluator_splits() {
    let fx = fixture();
    let probs = f32s(&fx, "is_probs");
    let classes = fx["is_classes"].as_u64().unwrap() as usize;
    let split = fx["is_split_size"].as_u64().unwrap() as usize;
    for (got, key) in [
        (inception_score(&probs, classes, split).unwrap(), "is"),
        (
            inception_score(&probs, classes, rar_eval::IS_SPLIT_SIZE).unwrap(),
            "is_one_split",
        ),
    ] {
        let want = fx[key].as_f64().unwrap();
        println!("{key}: {got} (numpy {want})");
        assert!((got - want).abs() <= 1e-12 * want, "{key}: {got} vs {want}");
    }
}

#[test]
fn bad_inputs_are_errors_naming_the_input() {
    let err = Gaussian::of_features(&[1.0, 2.0, 3.0], 2).unwrap_err();
    assert!(
        matches!(
            err,
            EvalError::Ragged {
                len: 3,
                width: 2,
                ..
            }
        ),
        "{err}"
    );
    let err = Gaussian::of_features(&[1.0, 2.0], 2).unwrap_err();
    assert!(
        matches!(err, EvalError::TooFewSamples { got: 1, .. }),
        "{err}"
    );
    let mut acc = MomentAccumulator::new(2);
    let err = acc.add(&[1.0, f32::NAN]).unwrap_err();
    assert!(err.to_string().contains("index 1"), "{err}");
    assert_eq!(
        acc.samples(),
        0,
        "a refused batch leaves the accumulator unchanged"
    );
    let a = Gaussian::of_features(&[0.0, 1.0, 1.0, 0.0], 2).unwrap();
    let b = Gaussian::of_features(&[0.0, 1.0, 2.0, 1.0, 0.0, 2.0], 3).unwrap();
    assert!(matches!(
        a.frechet_distance(&b),
        Err(EvalError::DimensionMismatch { .. })
    ));
    assert!(Gaussian::new(vec![0.0; 2], vec![0.0; 3], 0).is_err());
    assert!(matches!(
        inception_score(&[0.5, -0.5], 2, 10),
        Err(EvalError::Invalid { .. })
    ));
    assert!(matches!(
        inception_score(&[0.5, 0.5], 2, 0),
        Err(EvalError::Invalid { .. })
    ));
    assert!(matches!(
        inception_score(&[0.5, 0.5, 1.0], 2, 10),
        Err(EvalError::Ragged { .. })
    ));
}
