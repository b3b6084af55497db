//! Precision and recall against the evaluator's algorithm in numpy
//! (`scripts/eval_fixtures.py` → `tests/fixtures/precision_recall.json`).

use rar_eval::{DistancePrecision, EvalError, ManifoldEstimator};
use serde_json::Value;

mod common;
use common::{fixture_json, floats};

fn cases() -> Vec<Value> {
    fixture_json("precision_recall.json")
        .as_array()
        .unwrap()
        .clone()
}

fn estimator(case: &Value) -> ManifoldEstimator {
    ManifoldEstimator {
        neighbourhood: 3,
        row_batch: case["row_batch"].as_u64().unwrap() as usize,
        col_batch: case["col_batch"].as_u64().unwrap() as usize,
        distances: if case["half"].as_bool().unwrap() {
            DistancePrecision::Float16
        } else {
            DistancePrecision::Float32
        },
    }
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs()
}

#[test]
fn radii_match_the_evaluator() {
    for case in cases() {
        let name = case["name"].as_str().unwrap();
        let dim = case["dim"].as_u64().unwrap() as usize;
        let est = estimator(&case);
        for (set, radii) in [
            ("reference", "reference_radii"),
            ("samples", "sample_radii"),
        ] {
            let got = est.radii(&floats(&case[set]), dim).unwrap();
            let want = floats(&case[radii]);
            if case["grid"].as_bool().unwrap() {
                // Features on a 1/8 grid: every rounding is determined, so equality.
                assert_eq!(got, want, "{name}: {set} radii");
            } else {
                // ‖u‖² − 2u·v + ‖v‖² cancels: the f32 dot products' summation order (faer
                // against numpy's BLAS) moves it by ~√dim ulps of the norms, not of the
                // distance; measured 0.18 at norms² 7.6e4, dim 512.
                let features = floats(&case[set]);
                let scale = features
                    .chunks(dim)
                    .map(|r| r.iter().map(|x| x * x).sum::<f32>())
                    .fold(0.0f32, f32::max) as f64;
                let worst = got
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (*a as f64 - *b as f64).abs())
                    .fold(0.0, f64::max);
                assert!(
                    worst <= 4.0 * (dim as f64).sqrt() * f32::EPSILON as f64 * 2.0 * scale,
                    "{name}: {set} radii |Δ| {worst:.2e} against norms² {scale:.2e}"
                );
            }
        }
    }
}

#[test]
fn precision_and_recall_match_the_evaluator() {
    for case in cases() {
        let name = case["name"].as_str().unwrap();
        let dim = case["dim"].as_u64().unwrap() as usize;
        let pr = estimator(&case)
            .precision_recall(&floats(&case["reference"]), &floats(&case["samples"]), dim)
            .unwrap();
        let (p, r) = (
            case["precision"].as_f64().unwrap(),
            case["recall"].as_f64().unwrap(),
        );
        println!(
            "{name}: precision {} (numpy {p}), recall {} (numpy {r})",
            pr.precision, pr.recall
        );
        assert!(rel(pr.precision, p) <= 1e-6, "{name}: precision");
        assert!(rel(pr.recall, r) <= 1e-6, "{name}: recall");
    }
}

#[test]
fn the_fallback_case_needs_it() {
    // Without the per-block float32 fallback the overflowing rows would be infinitely far:
    // the fixture must hold blocks of both kinds for the test above to mean something.
    let case = &cases()[1];
    assert!(case["half_blocks"].as_u64().unwrap() > 0);
    assert!(case["float32_blocks"].as_u64().unwrap() > 0);
    // Every half norm overflows here, so dot products do too and `inf − inf` is NaN: a NaN
    // clamped to 0 instead of kept would pass for a finite half block (found on a
    // random-weight Inception, whose pool_3 norms are ~1e5).
    let case = &cases()[2];
    assert_eq!(case["name"], "half_all_overflow");
    assert_eq!(case["half_blocks"].as_u64().unwrap(), 0);
}

#[test]
fn bad_inputs_are_errors() {
    let est = ManifoldEstimator::default();
    assert!(matches!(
        est.radii(&[0.0; 6], 2),
        Err(EvalError::TooFewSamples {
            got: 3,
            need: 4,
            ..
        })
    ));
    assert!(matches!(
        est.radii(&[0.0; 7], 2),
        Err(EvalError::Ragged { .. })
    ));
    assert!(matches!(
        est.radii(&[0.0, f32::NAN, 0.0, 0.0, 1.0, 1.0, 2.0, 2.0], 2),
        Err(EvalError::NonFinite { index: 1, .. })
    ));
    let zero = ManifoldEstimator {
        row_batch: 0,
        ..est
    };
    assert!(matches!(
        zero.precision_recall(&[0.0; 8], &[0.0; 8], 2),
        Err(EvalError::Invalid { .. })
    ));
    assert!(matches!(
        est.precision_recall(&[0.0; 8], &[0.0; 12], 3),
        Err(EvalError::Ragged { .. })
    ));
}
