"""Loads the official RAR generator from a checkout of bytedance/1d-tokenizer that the user
names (nothing of it is copied here), for `train_step.py` and `sample.py`."""

import importlib.util
import sys
import types
from pathlib import Path


def load_file(name, path):
    """Imports the Python file `path` as module `name`."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def import_official(reference):
    """The official `RAR` class and cosine schedule from the checkout `reference`."""
    root = Path(reference)
    rar_file = root / "modeling" / "rar.py"
    if not rar_file.is_file():
        sys.exit(f"{rar_file} not found: --reference must be a checkout of bytedance/1d-tokenizer")
    # Empty package shells, so that `modeling/rar.py`'s `from modeling.modules import BaseModel`
    # finds the checkout's own BaseModel without running the packages' __init__ files.
    for name, sub in (("modeling", "modeling"), ("modeling.modules", "modeling/modules")):
        package = types.ModuleType(name)
        package.__path__ = [str(root / sub)]
        sys.modules[name] = package
    base = load_file("modeling.modules.base_model", root / "modeling" / "modules" / "base_model.py")
    sys.modules["modeling.modules"].BaseModel = base.BaseModel
    rar = load_file("modeling.rar", rar_file)
    schedulers = load_file("rar_reference_lr_schedulers", root / "utils" / "lr_schedulers.py")
    return rar.RAR, schedulers.get_cosine_schedule_with_warmup


def import_official_loss(reference):
    """The official `ARLoss` class from `modeling/modules/losses.py` of the checkout.

    That file's module-level imports (einops, the diffusion code, the perceptual loss and its
    torchvision/timm weights) serve the tokenizers' losses; `ARLoss` itself uses only torch.
    So only the class definition is taken from the file, by its syntax tree, and run with the
    names it needs: the checkout's code, not a copy of it."""
    import ast
    from typing import Mapping, Text, Tuple

    import torch

    path = Path(reference) / "modeling" / "modules" / "losses.py"
    if not path.is_file():
        sys.exit(f"{path} not found: --reference must be a checkout of bytedance/1d-tokenizer")
    tree = ast.parse(path.read_text(), filename=str(path))
    found = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "ARLoss"]
    if not found:
        sys.exit(f"{path} defines no ARLoss class")
    namespace = {"torch": torch, "Mapping": Mapping, "Text": Text, "Tuple": Tuple,
                 "__name__": "rar_reference_losses"}
    exec(compile(ast.Module(body=found, type_ignores=[]), str(path), "exec"), namespace)
    return namespace["ARLoss"]


class Config(dict):
    """The attribute access (and `.get`) the official code uses on its OmegaConf config."""

    def __getattr__(self, key):
        value = self[key]
        return Config(value) if isinstance(value, dict) else value


def common_parser(doc):
    """A parser with --reference, the model-size flags and --batch, shared by the scripts."""
    import argparse
    import os

    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--reference", default=os.environ.get("RAR_REFERENCE"),
                        help="checkout of bytedance/1d-tokenizer (or set RAR_REFERENCE)")
    add_shape_arguments(parser)
    parser.add_argument("--batch", type=int, default=8)
    return parser


def add_shape_arguments(parser):
    """The model-size flags, named and defaulted as in the Rust examples."""
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--mlp", type=int, default=1024)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--codebook", type=int, default=1024)
    parser.add_argument("--classes", type=int, default=1000)


def generator_config(args, dropout=0.0):
    """The official config for the size in `args` (see `add_shape_arguments`)."""
    return Config(model={
        "generator": {
            "hidden_size": args.hidden, "num_hidden_layers": args.depth,
            "num_attention_heads": args.heads, "intermediate_size": args.mlp,
            "image_seq_len": args.tokens, "condition_num_classes": args.classes,
            "dropout": dropout, "attn_drop": dropout,
        },
        "vq_model": {"codebook_size": args.codebook},
    })


def parse_and_import(parser):
    """Adds --threads and --seed, parses, and imports the official code named by --reference;
    sets torch's thread count and seeds. Returns `(args, RAR, cosine_schedule)`; the checkout
    is `args.reference` (for `import_official_loss`)."""
    import random

    import torch

    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not args.reference:
        parser.error("name the official checkout with --reference DIR or RAR_REFERENCE")
    rar, cosine_schedule = import_official(args.reference)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    return args, rar, cosine_schedule
