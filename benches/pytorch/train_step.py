"""Times one full training step of the official RAR model in PyTorch, for comparison with
`examples/train_bench.rs` (same sizes, same flags, same printed figures).

The model is imported from a checkout of the official code (bytedance/1d-tokenizer) that the
user names — nothing of it is copied here:

    git clone https://github.com/bytedance/1d-tokenizer /path/to/1d-tokenizer
    pip install torch timm numpy
    python benches/pytorch/train_step.py --reference /path/to/1d-tokenizer --threads 1
    RAR_REFERENCE=/path/to/1d-tokenizer python benches/pytorch/train_step.py --threads 2 --dropout 0.1

Only `modeling/rar.py`, `modeling/modules/base_model.py`, `utils/lr_schedulers.py` and the
`ARLoss` class of `modeling/modules/losses.py` are loaded (by file): importing the `modeling`
package as a whole would pull in the tokenizers' training losses and their dependencies,
which the generator does not use.

One step is what the official `utils/train_utils.py` does for the generator: set the
random-order ratio, drop class labels, forward with per-sample orders, the official `ARLoss`
(the mean cross-entropy over all targets and the fraction of correctly predicted tokens, both
read back as the official loop logs them), backward, clip the global gradient norm at 1.0,
AdamW with the two parameter groups (no weight decay for tensors of fewer than two dimensions
and for names containing ln, bias, latent_tokens, mask_token, embedding, norm, gamma or
embed; 0.03 otherwise; betas 0.9 / 0.96), the scheduler step — in fp32 on the CPU.
"""

import time

import torch
import torch.nn.functional as F

from official import common_parser, generator_config, import_official_loss, parse_and_import


NO_DECAY_SUBSTRINGS = ("ln", "bias", "latent_tokens", "mask_token", "embedding", "norm",
                       "gamma", "embed")


def optimizer_groups(model, weight_decay):
    """The official two parameter groups (see the module docstring)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if param.ndim < 2 or any(s in name for s in NO_DECAY_SUBSTRINGS):
            no_decay.append(param)
        else:
            decay.append(param)
    return [{"params": no_decay, "weight_decay": 0.0},
            {"params": decay, "weight_decay": weight_decay}]


def main():
    p = common_parser(__doc__)
    p.add_argument("--dropout", type=float, default=0.0, help="dropout and attn_drop")
    p.add_argument("--label-dropout", type=float, default=0.1)
    p.add_argument("--ratio", type=float, default=1.0, help="random-order probability r")
    p.add_argument("--loss", choices=("official", "cross-entropy"), default="official",
                   help="official: the checkout's ARLoss (its accuracy included, as in the official "
                        "loop); cross-entropy: F.cross_entropy alone (the figures before 2026-12-07)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    args, RAR, cosine_schedule = parse_and_import(p)
    config = generator_config(args, dropout=args.dropout)
    model = RAR(config)
    model.train()
    model.set_random_ratio(args.ratio)
    # ARLoss reads only `config.model.vq_model.codebook_size`.
    ar_loss = import_official_loss(args.reference)(config) if args.loss == "official" else None
    optimizer = torch.optim.AdamW(optimizer_groups(model, 0.03), lr=4e-4, betas=(0.9, 0.96))
    scheduler = cosine_schedule(optimizer, num_warmup_steps=62_500, num_training_steps=250_000,
                                base_lr=4e-4, end_lr=1e-5)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"torch {torch.__version__}; official RAR from {args.reference}; model: C {args.hidden} "
          f"D {args.depth} H {args.heads} I {args.mlp} N {args.tokens} V {args.codebook} "
          f"K {args.classes} ({n_params / 1e6:.2f} M params); batch {args.batch}; dropout "
          f"{args.dropout}; label dropout {args.label_dropout}; random-order ratio {args.ratio}; "
          f"loss {args.loss}; "
          f"threads {torch.get_num_threads()}")

    times, cpu_times = [], []
    for t in range(args.warmup + args.steps):
        tokens = torch.randint(0, args.codebook, (args.batch, args.tokens))
        classes = torch.randint(0, args.classes, (args.batch,))
        cpu_start, start = time.process_time(), time.perf_counter()
        condition = model.preprocess_condition(classes, cond_drop_prob=args.label_dropout)
        logits, labels = model(tokens, condition, return_labels=True)
        if ar_loss is not None:
            loss, loss_dict = ar_loss(logits, labels)
            # The official loop reads every logged value back each step.
            logged = {k: v.item() for k, v in loss_dict.items()}
        else:
            # The mean cross-entropy of the first N outputs against the permuted labels.
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, args.codebook), labels.reshape(-1))
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        loss_value, norm_value = loss.item(), grad_norm.item()
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        if t >= args.warmup:
            times.append(elapsed)
            cpu_times.append(cpu)
        tag = "  (warm-up)" if t < args.warmup else ""
        print(f"step {t:>3}: {elapsed:.3f} s (cpu {cpu:.2f} s)  loss {loss_value:.4f}  "
              f"grad norm {norm_value:.4f}{tag}")
    times.sort()
    cpu_times.sort()
    n = args.batch * args.tokens
    best, median = times[0], times[len(times) // 2]
    print(f"train step: best {best:.3f} s ({n / best:.0f} tokens/s), median {median:.3f} s "
          f"({n / median:.0f} tokens/s), mean {sum(times) / len(times):.3f} s over "
          f"{args.steps} steps")
    print(f"cpu time per step (all threads): best {cpu_times[0]:.2f} s, "
          f"median {cpu_times[len(cpu_times) // 2]:.2f} s")


if __name__ == "__main__":
    main()
