#!/usr/bin/env python3
"""Writes the InceptionV3 parity fixtures of rar-eval (crates/rar-eval/tests/fixtures/).

The reference is torch-fidelity from PyPI (``pip install torch torch-fidelity``): its
``FeatureExtractorInceptionV3`` (the port of the ADM evaluator's TensorFlow graph, the same
network and keys as pytorch-fid's FID Inception) and its
``interpolate_bilinear_2d_like_tensorflow1x``. Nothing is downloaded: the module is built at
random initialisation (its weight download is bypassed), then every parameter and buffer is
overwritten by a counter-based formula that the Rust test reproduces exactly, so that no
95 MB state dict has to live in the repository:

    u[j]  = (splitmix64(fnv1a64(key) + j) >> 40) / 2**24          (exact in float32)
    conv  = (2u - 1) * f32(sqrt(6 / fan_in))       BN weight, running_var = 0.5 + u
    fc.weight = (2u - 1) * f32(sqrt(3 / 2048))     BN bias, running_mean, fc.bias = (2u - 1) * 0.1

Written:
* ``inception.json``: the state dict's keys and shapes (num_batches_tracked included), the
  TF1 resize of two small images to 23x23 (up- and down-sampling), and the network's features
  on two 24x20 images: ``pool_3`` (2048), the evaluator's spatial ``mixed_6/conv[..., :7]``
  (the 1x1 branch of Mixed_6d after its ReLU, NHWC-flattened, 2023) and the bias-free logits
  (1008) that the evaluator's Inception Score uses;
* ``inception_keys_zip.pth.gz`` / ``inception_keys_legacy.pth.gz``: the reference module's
  state dict with its real keys, shapes and dtypes, each tensor filled with its index + 1
  (so a loader that maps a key to the wrong parameter is caught), saved in torch's zip and
  legacy formats and gzipped (constant tensors compress to a few hundred kB).

Run: ``python3 scripts/inception_fixtures.py``.
"""
import gzip
import io
import json
import math
import os
from unittest import mock

import numpy as np
import torch
import torch_fidelity.feature_extractor_inceptionv3 as fe
from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "rar-eval", "tests", "fixtures")
M64 = (1 << 64) - 1


def fnv1a64(text):
    h = 0xCBF29CE484222325
    for byte in text.encode():
        h = ((h ^ byte) * 0x100000001B3) & M64
    return h


def splitmix64(x):
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def uniform(key, n):
    j = np.arange(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        bits = splitmix64(np.uint64(fnv1a64(key)) + j) >> np.uint64(40)
    return (bits.astype(np.float32) / np.float32(1 << 24)).astype(np.float32)


def formula(key, shape):
    n = int(np.prod(shape))
    u = uniform(key, n)
    signed = np.float32(2.0) * u - np.float32(1.0)
    if key.endswith("conv.weight"):
        fan_in = int(np.prod(shape[1:]))
        v = signed * np.float32(math.sqrt(6.0 / fan_in))
    elif key == "fc.weight":
        v = signed * np.float32(math.sqrt(3.0 / shape[1]))
    elif key.endswith("bn.weight") or key.endswith("running_var"):
        v = np.float32(0.5) + u
    else:  # bn.bias, running_mean, fc.bias
        v = signed * np.float32(0.1)
    return v.astype(np.float32).reshape(shape)


def reference_module(features):
    # The module at random initialisation: skip its download and its load_state_dict.
    with mock.patch.object(fe.torch, "load", lambda *a, **k: {}), mock.patch.object(
        torch.nn.Module, "load_state_dict", lambda self, sd, strict=True: None
    ):
        return fe.FeatureExtractorInceptionV3("inception-v3-compat", features, "unused")


def main():
    torch.manual_seed(0)
    model = reference_module(["2048", "logits_unbiased"])
    state = model.state_dict()
    keys = [{"key": k, "shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")}
            for k, v in state.items()]

    # 1. The real keys, filled with index + 1, in both torch formats.
    marked = {k: torch.full_like(v, i + 1) for i, (k, v) in enumerate(state.items())}
    for name, zip_format in (("zip", True), ("legacy", False)):
        buf = io.BytesIO()
        torch.save(marked, buf, _use_new_zipfile_serialization=zip_format)
        with gzip.open(os.path.join(OUT, f"inception_keys_{name}.pth.gz"), "wb", 9) as f:
            f.write(buf.getvalue())

    # 2. Formula weights and the network's outputs.
    with torch.no_grad():
        for k, v in state.items():
            if v.dtype.is_floating_point:
                v.copy_(torch.from_numpy(formula(k, list(v.shape))))
    spatial = {}
    model.Mixed_6d.branch1x1.register_forward_hook(lambda m, i, o: spatial.__setitem__("x", o))
    rng = np.random.default_rng(20261202)
    images = rng.integers(0, 256, size=(2, 24, 20, 3), dtype=np.uint8)
    with torch.no_grad():
        pool, logits = model(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous())
    mixed_6_conv = spatial["x"][:, :7].permute(0, 2, 3, 1).reshape(2, -1)

    # 3. The resize alone, up and down, to 23x23 (before the (x - 128) / 128 scaling).
    resize_cases = []
    for h, w in ((13, 17), (40, 37)):
        img = rng.integers(0, 256, size=(1, h, w, 3), dtype=np.uint8)
        x = torch.from_numpy(img).permute(0, 3, 1, 2).float()
        y = interpolate_bilinear_2d_like_tensorflow1x(x, size=(23, 23), align_corners=False)
        resize_cases.append({"height": h, "width": w, "pixels": img.ravel().tolist(),
                             "resized": y.numpy().ravel().tolist()})

    fixture = {
        "reference": f"torch-fidelity {__import__('torch_fidelity').__version__}, torch {torch.__version__}",
        "keys": keys,
        "resize_side": 23,
        "resize": resize_cases,
        "images": {"count": 2, "height": 24, "width": 20, "pixels": images.ravel().tolist()},
        "pool": pool.numpy().ravel().tolist(),
        "spatial": mixed_6_conv.numpy().ravel().tolist(),
        "logits": logits.numpy().ravel().tolist(),
    }
    with open(os.path.join(OUT, "inception.json"), "w") as f:
        json.dump(fixture, f)
    print("pool norm", float(pool.norm()), "spatial norm", float(mixed_6_conv.norm()),
          "logits norm", float(logits.norm()), "keys", len(keys))


if __name__ == "__main__":
    main()
