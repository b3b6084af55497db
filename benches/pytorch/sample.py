"""Times the official RAR `generate()` (KV cache, classifier-free guidance) in PyTorch, for
comparison with `examples/sample_bench.rs` (same sizes, flags and printed figures).

The model is imported from a checkout of bytedance/1d-tokenizer that the user names:

    pip install torch timm numpy
    python benches/pytorch/sample.py --reference /path/to/1d-tokenizer --threads 1

Random weights (the cost of a step does not depend on their values), eval mode, no autograd,
fp32 on the CPU; token generation only (no detokenization).
"""

import time

import torch

from official import common_parser, generator_config, parse_and_import


def main():
    p = common_parser(__doc__)
    p.add_argument("--guidance", type=float, default=4.0)
    p.add_argument("--guidance-pow", type=float, default=2.75)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--repeats", type=int, default=3, help="timed batches after one warm-up")
    p.add_argument("--no-kv-cache", action="store_true", help="full recomputation per step")
    args, RAR, _ = parse_and_import(p)
    model = RAR(generator_config(args)).eval()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"torch {torch.__version__}; official RAR from {args.reference}; model: C {args.hidden} "
          f"D {args.depth} H {args.heads} I {args.mlp} N {args.tokens} V {args.codebook} "
          f"K {args.classes} ({n_params / 1e6:.2f} M params); batch {args.batch}; guidance "
          f"{args.guidance}; threads {torch.get_num_threads()}")
    classes = torch.tensor([(i * 97) % args.classes for i in range(args.batch)])
    times = []
    with torch.no_grad():
        for r in range(1 + args.repeats):
            start = time.perf_counter()
            ids = model.generate(condition=classes, guidance_scale=args.guidance,
                                 randomize_temperature=args.temperature,
                                 guidance_scale_pow=args.guidance_pow,
                                 kv_cache=not args.no_kv_cache)
            elapsed = time.perf_counter() - start
            assert ids.shape == (args.batch, args.tokens), ids.shape
            tag = "  (warm-up)" if r == 0 else ""
            print(f"batch {r}: {elapsed:.3f} s{tag}")
            if r > 0:
                times.append(elapsed)
    times.sort()
    median = times[len(times) // 2]
    generated = args.batch * args.tokens
    print(f"kv cache:       {median:.3f} s/batch (median of {args.repeats}), "
          f"{generated / median:.0f} tokens/s, {args.batch / median:.2f} images/s")


if __name__ == "__main__":
    main()
