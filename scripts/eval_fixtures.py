#!/usr/bin/env python3
"""Writes the parity fixtures of rar-eval's statistics (crates/rar-eval/tests/fixtures/).

The reference computation is numpy + scipy used the way the ADM evaluator
(openai/guided-diffusion, evaluations/evaluator.py) uses them:

* moments: mean over samples, ``np.cov(x, rowvar=False)`` (N - 1 normalisation);
* Frechet distance: ``|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr(sqrtm(S1 @ S2))`` with
  ``scipy.linalg.sqrtm`` (real part kept);
* Inception Score: consecutive splits of ``split_size`` rows (the last one may be shorter),
  ``exp(mean_rows(sum_classes(p * (log p - log mean_rows(p)))))``, averaged over splits;
* precision and recall (``ManifoldEstimator``, k = 3): squared distances
  ``max(|u|^2 - 2 u.v + |v|^2, 0)`` per ``row_batch x col_batch`` block, in float16 (inputs
  cast to half, dot products and norms accumulated in float32 and rounded to half, each
  element-wise step rounded to half) with a float32 recomputation of any block holding a
  non-finite half value; radii the k-th smallest of each row by ``np.partition``; a point
  is inside when ``d <= radius``.  The float16 cases use features on a 1/8 grid, so every
  float32 dot product is exact whatever the summation order and the half roundings are
  deterministic (``precision_recall.json``).

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


def pairwise(u, v, half):
    if half:
        with np.errstate(over="ignore", invalid="ignore"):
            u16, v16 = u.astype(np.float16), v.astype(np.float16)
            nu = np.sum(np.square(u16).astype(np.float32), 1).astype(np.float16)
            nv = np.sum(np.square(v16).astype(np.float32), 1).astype(np.float16)
            mm = (u16.astype(np.float32) @ v16.astype(np.float32).T).astype(np.float16)
            d = np.maximum(nu[:, None] - np.float16(2) * mm + nv[None, :], np.float16(0))
        if np.all(np.isfinite(d)):
            return d.astype(np.float32), True
    nu, nv = np.sum(u * u, 1), np.sum(v * v, 1)
    return np.maximum(nu[:, None] - np.float32(2) * (u @ v.T) + nv[None, :], np.float32(0)), False


def radii(f, k, rb, cb, half, stats):
    out = np.zeros(len(f), np.float32)
    for r0 in range(0, len(f), rb):
        blocks = []
        for c0 in range(0, len(f), cb):
            d, used_half = pairwise(f[r0 : r0 + rb], f[c0 : c0 + cb], half)
            stats[used_half] += 1
            blocks.append(d)
        out[r0 : r0 + rb] = np.partition(np.concatenate(blocks, 1), k, axis=1)[:, k]
    return out


def precision_recall(ref, smp, k, rb, cb, half):
    stats = {True: 0, False: 0}
    r_ref, r_smp = radii(ref, k, rb, cb, half, stats), radii(smp, k, rb, cb, half, stats)
    ref_in, smp_in = np.zeros(len(ref), bool), np.zeros(len(smp), bool)
    for r0 in range(0, len(ref), rb):
        for c0 in range(0, len(smp), cb):
            d, used_half = pairwise(ref[r0 : r0 + rb], smp[c0 : c0 + cb], half)
            stats[used_half] += 1
            ref_in[r0 : r0 + rb] |= np.any(d <= r_smp[None, c0 : c0 + cb], 1)
            smp_in[c0 : c0 + cb] |= np.any(d <= r_ref[r0 : r0 + rb, None], 0)
    return r_ref, r_smp, float(smp_in.mean()), float(ref_in.mean()), stats


def precision_recall_fixture():
    rng = np.random.default_rng(20261203)
    grid = lambda n, d, hi: (rng.integers(0, hi + 1, size=(n, d)) / 8).astype(np.float32)
    cases = []

    def add(name, ref, smp, rb, cb, half, grid=False):
        r_ref, r_smp, p, r, stats = precision_recall(ref, smp, 3, rb, cb, half)
        cases.append({"name": name, "dim": ref.shape[1], "row_batch": rb, "col_batch": cb,
                      "half": half, "grid": grid, "reference": ref.ravel().tolist(), "samples": smp.ravel().tolist(),
                      "reference_radii": r_ref.tolist(), "sample_radii": r_smp.tolist(),
                      "precision": p, "recall": r, "half_blocks": stats[True],
                      "float32_blocks": stats[False]})
        print(name, "precision", p, "recall", r, "half blocks", stats[True], "float32", stats[False])

    # one block each way, half precision, values on a 1/8 grid in [0, 3]
    add("half", grid(300, 64, 24), grid(250, 64, 22) + np.float32(0.125), 10000, 10000, True, True)
    # small evaluator blocks; a few reference rows overflow half (their blocks fall back to
    # float32) and a few have half norms above 16 000 that may or may not overflow
    ref, smp = grid(230, 32, 24), grid(170, 32, 24)
    ref[[3, 100, 101]] *= np.float32(64)
    ref[[150, 151]] *= np.float32(12)
    smp[[7]] *= np.float32(12)
    add("half_blocks_with_fallback", ref, smp, 64, 50, True, True)
    # features as large as pool_3 of a random-weight network: every half norm and most half
    # dot products overflow (inf - inf is NaN), so every block falls back to float32
    add("half_all_overflow", features(rng, 60, 512, 12.0), features(rng, 40, 512, 12.1), 10000, 10000, True)
    # continuous features in float32
    add("float32", features(rng, 400, 48, 0.5), features(rng, 300, 48, 0.55), 128, 96, False)
    with open(os.path.join(OUT, "precision_recall.json"), "w") as f:
        json.dump(cases, f)


def npz_fixtures():
    """A tiny reference batch as numpy writes one (arr_0 uint8 images with mu/sigma/mu_s/
    sigma_s float64), stored and compressed, plus the values to expect."""
    rng = np.random.default_rng(20261204)
    images = rng.integers(0, 256, size=(5, 6, 4, 3), dtype=np.uint8)
    mu, mu_s = rng.normal(size=3), rng.normal(size=2)
    a, b = rng.normal(size=(3, 3)), rng.normal(size=(2, 2))
    arrays = {"arr_0": images, "mu": mu, "sigma": a @ a.T, "mu_s": mu_s, "sigma_s": b @ b.T}
    np.savez(os.path.join(OUT, "reference_small.npz"), **arrays)
    np.savez_compressed(os.path.join(OUT, "reference_small_compressed.npz"), **arrays)
    with open(os.path.join(OUT, "reference_small.json"), "w") as f:
        json.dump({k: v.ravel().tolist() for k, v in arrays.items()} | {"shape": list(images.shape)}, f)


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
    precision_recall_fixture()
    npz_fixtures()


if __name__ == "__main__":
    main()
