#!/usr/bin/env python3
"""The evaluator's five numbers computed in Python, to check `cargo run --example evaluate`
against an independent pipeline on the same files.

Features come from torch-fidelity's ``FeatureExtractorInceptionV3`` (PyPI ``torch-fidelity``,
the port of the ADM evaluator's graph; its ``mixed_6/conv`` is read with a forward hook on
``Mixed_6d.branch1x1``); the statistics are the numpy/scipy computations of
``eval_fixtures.py`` (moments, ``scipy.linalg.sqrtm`` Frechet distance, Inception Score in
splits of 5000, float16 k-NN precision and recall). Like the evaluator, FID and sFID use the
reference batch's stored ``mu``/``sigma``/``mu_s``/``sigma_s`` when it has them.

    python3 scripts/evaluate_reference.py --reference ref.npz --samples samples.npz \\
        --inception weights-inception-2015-12-05-6726825d.pth
    python3 scripts/evaluate_reference.py --save-random-inception random.pth

``--save-random-inception`` writes torch-fidelity's module at a random initialisation (no
download) as a state dict with the published keys, for trying the pipeline without the real
weights: torch's default convolution init scaled by sqrt(6) (He variance, so activations
neither vanish nor explode over the 94 layers) and random BatchNorm statistics.
"""
import argparse
import json
import os
import sys
from unittest import mock

import numpy as np
import torch
import torch_fidelity.feature_extractor_inceptionv3 as fe

sys.path.insert(0, os.path.dirname(__file__))
from eval_fixtures import frechet, inception_score, precision_recall  # noqa: E402


def random_module():
    with mock.patch.object(fe.torch, "load", lambda *a, **k: {}), mock.patch.object(
        torch.nn.Module, "load_state_dict", lambda self, sd, strict=True: None
    ):
        return fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"], "unused")


def features(model, images, batch=64):
    spatial = {}
    hook = model.Mixed_6d.branch1x1.register_forward_hook(lambda m, i, o: spatial.__setitem__("x", o))
    pool, logits, spat = [], [], []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = torch.from_numpy(images[i : i + batch]).permute(0, 3, 1, 2).contiguous()
            p, l = model(x)
            pool.append(p.numpy())
            logits.append(l.numpy())
            s = spatial["x"][:, :7].permute(0, 2, 3, 1)
            spat.append(s.reshape(len(x), -1).numpy())
    hook.remove()
    return np.concatenate(pool), np.concatenate(spat), np.concatenate(logits)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reference")
    ap.add_argument("--samples")
    ap.add_argument("--inception")
    ap.add_argument("--save-random-inception")
    args = ap.parse_args()
    if args.save_random_inception:
        torch.manual_seed(0)
        state = random_module().state_dict()
        with torch.no_grad():
            for k, v in state.items():
                if k.endswith("conv.weight"):
                    v.mul_(6 ** 0.5)
                elif k.endswith("bn.weight") or k.endswith("running_var"):
                    v.uniform_(0.5, 1.5)
                elif k.endswith("bn.bias") or k.endswith("running_mean"):
                    v.normal_(0, 0.1)
        torch.save(state, args.save_random_inception)
        return
    model = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"], args.inception)
    ref = np.load(args.reference)
    rp, rs, _ = features(model, ref["arr_0"])
    sp, ss, sl = features(model, np.load(args.samples)["arr_0"])
    if all(k in ref for k in ("mu", "sigma", "mu_s", "sigma_s")):
        ref_stats = (ref["mu"], ref["sigma"], ref["mu_s"], ref["sigma_s"])
    else:
        ref_stats = (rp.astype(np.float64).mean(0), np.cov(rp, rowvar=False),
                     rs.astype(np.float64).mean(0), np.cov(rs, rowvar=False))
    p = np.exp(sl.astype(np.float64) - sl.max(1, keepdims=True))
    p = (p / p.sum(1, keepdims=True)).astype(np.float32).astype(np.float64)
    _, _, precision, recall, _ = precision_recall(rp, sp, 3, 10000, 10000, True)
    report = {
        "inception_score": inception_score(p, 5000),
        "fid": frechet(sp.astype(np.float64).mean(0), np.cov(sp, rowvar=False), ref_stats[0], ref_stats[1]),
        "sfid": frechet(ss.astype(np.float64).mean(0), np.cov(ss, rowvar=False), ref_stats[2], ref_stats[3]),
        "precision": precision,
        "recall": recall,
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
