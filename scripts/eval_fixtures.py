#!/usr/bin/env python3
"""Writes the parity fixtures of rar-eval's statistics (crates/rar-eval/tests/fixtures/).

The reference computation is numpy + scipy used the way the ADM evaluator
(openai/guided-diffusion, evaluations/evaluator.py) uses them:

* moments: mean over samples, ``np.cov(x, rowvar=False)`` (N - 1 normalisation);
* Frechet distance: ``|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr(sqrtm(S1 @ S2))`` with
  ``scipy.linalg.sqrtm`` (real part kept);
* Inception Score: consecutive splits of ``split_size`` rows (the last one may be shorter),
  ``exp(mean_rows(sum_classes(p * (log p - log mean_rows(p)))))``, averaged over splits.

The evaluator computes its mean in the activations' float32; the fixtures hold both that value
and the float64 one, so the tests can state how far apart the two are. Random inputs with a
fixed seed; run ``python3 scripts/eval_fixtures.py`` (needs numpy and scipy) to regenerate.
"""
import json
import os

import numpy as np
from scipy import linalg

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "rar-eval", "tests", "fixtures")


def features(rng, n, d, shift):
    # correlated, non-negative, with a non-zero mean, like pooled Inception activations
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    x = np.maximum(rng.normal(size=(n, d)) @ mix + shift, 0.0) + rng.uniform(size=(n, d)) * 0.1
    return x.astype(np.float32)


def frechet(mu1, s1, mu2, s2):
    covmean = linalg.sqrtm(s1.dot(s2))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def inception_score(p, split_size):
    scores = []
    for i in range(0, len(p), split_size):
        part = p[i : i + split_size]
        kl = part * (np.log(part) - np.log(np.mean(part, 0, keepdims=True)))
        scores.append(np.exp(np.mean(np.sum(kl, 1))))
    return float(np.mean(scores))


def main():
    rng = np.random.default_rng(20261202)
    d = 32
    a = features(rng, 300, d, 0.5)
    b = features(rng, 200, d, 0.6)
    case = {"dim": d, "a": a.ravel().tolist(), "b": b.ravel().tolist()}
    for name, x in (("a", a), ("b", b)):
        case[f"mean_{name}"] = x.astype(np.float64).mean(0).tolist()
        case[f"mean32_{name}"] = x.mean(0).astype(np.float64).tolist()
        case[f"cov_{name}"] = np.cov(x, rowvar=False).ravel().tolist()
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    case["fid"] = frechet(a.astype(np.float64).mean(0), s_a, b.astype(np.float64).mean(0), s_b)
    case["fid_mean32"] = frechet(a.mean(0).astype(np.float64), s_a, b.mean(0).astype(np.float64), s_b)
    # fewer samples than features: a singular covariance (rank 19 of 32)
    c = features(rng, 20, d, 0.5)
    case["c"] = c.ravel().tolist()
    case["fid_singular"] = frechet(
        a.astype(np.float64).mean(0), s_a, c.astype(np.float64).mean(0), np.cov(c, rowvar=False)
    )
    case["fid_self"] = frechet(a.astype(np.float64).mean(0), s_a, a.astype(np.float64).mean(0), s_a)

    logits = rng.normal(size=(300, 20)) * 2.0
    p = np.exp(logits - logits.max(1, keepdims=True))
    p = (p / p.sum(1, keepdims=True)).astype(np.float32)
    case["is_classes"] = 20
    case["is_probs"] = p.ravel().tolist()
    case["is_split_size"] = 128
    case["is"] = inception_score(p.astype(np.float64), 128)
    case["is_one_split"] = inception_score(p.astype(np.float64), 5000)

    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "statistics.json"), "w") as f:
        json.dump(case, f)
    print("fid", case["fid"], "fid (float32 mean)", case["fid_mean32"], "is", case["is"])


if __name__ == "__main__":
    main()
