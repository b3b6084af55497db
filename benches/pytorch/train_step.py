"""Times one full training step of the official RAR model in PyTorch (issue #6).

The model is the reference's `modeling/rar.py` (bytedance/1d-tokenizer, Apache-2.0), copied
below without its sampling code and with timm's `Mlp` written out (fc1 -> GELU -> dropout ->
fc2 -> dropout, as `timm.layers.Mlp` with its defaults); the step is the one of
`utils/train_utils.train_one_epoch_generator`:

    model.set_random_ratio(r); condition = preprocess_condition(class, 0.1)
    logits, labels = model(tokens, condition, return_labels=True)   # random orders with prob r
    loss = ARLoss(logits, labels); loss.backward()
    clip_grad_norm_(model.parameters(), 1.0); optimizer.step(); scheduler.step(); zero_grad()

with AdamW (betas 0.9 / 0.96, weight decay 0.03 on the `include` group, 0 on the
`gain_or_bias` group, exactly `create_optimizer`'s split) in fp32 on the CPU.

    python benches/pytorch/train_step.py --threads 1 --dropout 0
    python benches/pytorch/train_step.py --threads 2 --dropout 0.1

Prints s/step and tokens/s (B*N / step time) for the best and median of the timed steps, the
same figures as `examples/train_bench.rs`.
"""

import argparse
import math
import random
import time
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F


def build_causal_mask(seq_length):
    mask = torch.empty(seq_length, seq_length)
    mask.fill_(float("-inf"))
    mask.triu_(1)
    return mask


def init_weights(module):
    if isinstance(module, nn.Linear):
        module.weight.data = nn.init.trunc_normal_(module.weight.data, mean=0.0, std=0.02)
        if module.bias is not None:
            module.bias.data.zero_()
    elif isinstance(module, nn.Embedding):
        module.weight.data = nn.init.trunc_normal_(module.weight.data, mean=0.0, std=0.02)
    elif isinstance(module, nn.LayerNorm):
        if module.bias is not None:
            module.bias.data.zero_()
        if module.weight is not None:
            module.weight.data.fill_(1.0)


class Mlp(nn.Module):
    """timm.layers.Mlp with its defaults (bias, no norm, exact GELU)."""

    def __init__(self, in_features, hidden_features, act_layer=nn.GELU, drop=0.0):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = act_layer()
        self.drop1 = nn.Dropout(drop)
        self.norm = nn.Identity()
        self.fc2 = nn.Linear(hidden_features, in_features)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x):
        x = self.drop1(self.act(self.fc1(x)))
        return self.drop2(self.fc2(self.norm(x)))


class Attention(nn.Module):
    def __init__(self, dim, num_heads=8, qkv_bias=False, qk_norm=False, attn_drop=0.0,
                 proj_drop=0.0, norm_layer=nn.LayerNorm):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.q_norm = norm_layer(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm = norm_layer(self.head_dim) if qk_norm else nn.Identity()
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x, attn_mask=None):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        x = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask,
            dropout_p=self.attn_drop.p if self.training else 0.0,
        )
        x = x.transpose(1, 2).reshape(B, N, C)
        return self.proj_drop(self.proj(x))


def modulate(x, shift, scale):
    return x * (1 + scale) + shift


class FinalLayer(nn.Module):
    def __init__(self, dim, norm_layer):
        super().__init__()
        self.norm_final = norm_layer(dim, elementwise_affine=False)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))

    def forward(self, x, c):
        scale, shift = self.adaLN_modulation(c).chunk(2, dim=-1)
        return modulate(self.norm_final(x), shift, scale)


class Block(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio=4.0, qkv_bias=False, qk_norm=False,
                 proj_drop=0.0, attn_drop=0.0, norm_layer=nn.LayerNorm):
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = Attention(dim, num_heads, qkv_bias, qk_norm, attn_drop, proj_drop,
                              norm_layer)
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=proj_drop)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim, bias=True))

    def forward(self, x, attn_mask=None, c=None):
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = \
            self.adaLN_modulation(c).chunk(6, dim=-1)
        x = x + gate_msa * self.attn(modulate(self.norm1(x), shift_msa, scale_msa),
                                     attn_mask=attn_mask)
        x = x + gate_mlp * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))
        return x


class RAR(nn.Module):
    def __init__(self, embed_dim, depth, num_heads, intermediate_size, image_seq_len,
                 codebook_size, num_classes, dropout, attn_drop):
        super().__init__()
        norm_layer = partial(nn.LayerNorm, eps=1e-6)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.blocks = nn.ModuleList([
            Block(embed_dim, num_heads, intermediate_size / embed_dim, qkv_bias=True,
                  qk_norm=True, proj_drop=dropout, attn_drop=attn_drop, norm_layer=norm_layer)
            for _ in range(depth)])
        self.embeddings = nn.Embedding(codebook_size + 1 + num_classes + 1, embed_dim)
        self.pos_embed = nn.init.trunc_normal_(
            nn.Parameter(torch.zeros(1, image_seq_len + 1024, embed_dim)), 0.0, 0.02)
        self.target_aware_pos_embed = nn.init.trunc_normal_(
            nn.Parameter(torch.zeros(1, image_seq_len + 1024, embed_dim)), 0.0, 0.02)
        self.timesteps_embeddings = nn.init.trunc_normal_(
            nn.Parameter(torch.zeros(1, image_seq_len + 100, embed_dim)), 0.0, 0.02)
        self.adaln_before_head = FinalLayer(embed_dim, norm_layer=norm_layer)
        self.lm_head = nn.Linear(embed_dim, codebook_size, bias=True)
        self.image_seq_len = image_seq_len
        self.target_codebook_size = codebook_size
        self.none_condition_id = num_classes + codebook_size + 1
        self.apply(init_weights)
        self.register_buffer("attn_mask", build_causal_mask(image_seq_len + 1024),
                             persistent=False)
        nn.init.constant_(self.adaln_before_head.adaLN_modulation[-1].weight, 0)
        nn.init.constant_(self.adaln_before_head.adaLN_modulation[-1].bias, 0)
        for block in self.blocks:
            nn.init.constant_(block.adaLN_modulation[-1].weight, 0)
            nn.init.constant_(block.adaLN_modulation[-1].bias, 0)
        self.random_ratio = 0.0

    def sample_orders(self, x):
        orders = []
        for _ in range(x.shape[0]):
            if random.random() < self.random_ratio:
                orders.append(torch.randperm(self.image_seq_len, device=x.device))
            else:
                orders.append(torch.arange(self.image_seq_len, device=x.device))
        return torch.stack(orders)

    def set_random_ratio(self, new_ratio):
        self.random_ratio = new_ratio

    def shuffle(self, x, orders):
        batch_size, seq_len = x.shape[:2]
        batch_indices = torch.arange(batch_size).unsqueeze(1).expand(-1, seq_len)
        return x[batch_indices, orders]

    def preprocess_condition(self, condition, cond_drop_prob=0.0):
        drop_label_mask = torch.rand_like(condition, dtype=torch.float) < cond_drop_prob
        condition = condition + self.target_codebook_size + 1
        condition[drop_label_mask] = self.none_condition_id
        return condition

    def forward(self, input_ids, condition, return_labels=False):
        orders = self.sample_orders(input_ids)
        labels = input_ids.clone()
        input_ids = torch.cat([condition.view(condition.shape[0], -1),
                               input_ids.view(input_ids.shape[0], -1)], dim=1)
        embeddings = self.embeddings(input_ids)
        condition_token = embeddings[:, 0]
        pos_embed = self.pos_embed.repeat(input_ids.shape[0], 1, 1)
        prefix = 2
        pos_embed_prefix = pos_embed[:, :prefix]
        pos_embed_postfix = self.shuffle(pos_embed[:, prefix:prefix + self.image_seq_len], orders)
        target_aware_pos_embed = self.target_aware_pos_embed.repeat(input_ids.shape[0], 1, 1)
        target_aware_pos_embed_postfix = self.shuffle(
            target_aware_pos_embed[:, prefix:prefix + self.image_seq_len], orders)
        labels = self.shuffle(labels, orders)
        embeddings = torch.cat([embeddings[:, :1], self.shuffle(embeddings[:, 1:], orders)], dim=1)
        x = embeddings
        cls_tokens = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat((cls_tokens, x), dim=1)
        x = x + torch.cat([pos_embed_prefix, pos_embed_postfix], dim=1)[:, :x.shape[1]]
        target_aware_pos_embed = torch.cat(
            [torch.zeros_like(x[:, :prefix - 1]), target_aware_pos_embed_postfix,
             torch.zeros_like(x[:, -1:])], dim=1)
        x = x + target_aware_pos_embed[:, :x.shape[1]]
        attn_mask = self.attn_mask[:x.shape[1], :x.shape[1]]
        condition_token = condition_token.unsqueeze(1) + self.timesteps_embeddings[:, :x.shape[1]]
        for blk in self.blocks:
            x = blk(x, attn_mask=attn_mask, c=condition_token)
        x = x[:, prefix - 1:]
        condition_token = condition_token[:, prefix - 1:]
        x = self.adaln_before_head(x, condition_token)
        x = self.lm_head(x)
        if return_labels:
            return x, labels
        return x


def ar_loss(logits, labels, vocab):
    """The reference's ARLoss (mean cross-entropy over B*N) and its correct_tokens metric."""
    shift_logits = logits[..., :-1, :].permute(0, 2, 1).contiguous()
    shift_labels = labels.contiguous()
    shift_logits = shift_logits.view(shift_logits.shape[0], vocab, -1)
    shift_labels = shift_labels.view(shift_labels.shape[0], -1)
    loss = F.cross_entropy(shift_logits, shift_labels, reduction="mean")
    correct = (torch.argmax(shift_logits, dim=1) == shift_labels).sum(dim=1) / shift_labels.size(1)
    return loss, correct.mean()


def create_optimizer(model, lr, weight_decay):
    """`utils/train_utils.create_optimizer` for the generator."""
    def exclude(n, p):
        return (p.ndim < 2 or "ln" in n or "bias" in n or "latent_tokens" in n
                or "mask_token" in n or "embedding" in n or "norm" in n or "gamma" in n
                or "embed" in n)
    named = list(model.named_parameters())
    gain_or_bias = [p for n, p in named if exclude(n, p) and p.requires_grad]
    rest = [p for n, p in named if not exclude(n, p) and p.requires_grad]
    return torch.optim.AdamW(
        [{"params": gain_or_bias, "weight_decay": 0.0},
         {"params": rest, "weight_decay": weight_decay}],
        lr=lr, betas=(0.9, 0.96))


def cosine_with_warmup(optimizer, warmup, total, base_lr, end_lr):
    """The reference's `get_scheduler("cosine", ...)`: linear warm-up, cosine to end_lr."""
    def factor(step):
        if step < warmup:
            return step / max(1, warmup)
        progress = (step - warmup) / max(1, total - warmup)
        return (end_lr + 0.5 * (base_lr - end_lr) * (1 + math.cos(math.pi * progress))) / base_lr
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--mlp", type=int, default=1024)
    p.add_argument("--tokens", type=int, default=256)
    p.add_argument("--codebook", type=int, default=1024)
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--dropout", type=float, default=0.0,
                   help="dropout and attn_drop (the issue compares 0 and 0.1)")
    p.add_argument("--label-dropout", type=float, default=0.1)
    p.add_argument("--ratio", type=float, default=1.0, help="random-order probability r")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    model = RAR(args.hidden, args.depth, args.heads, args.mlp, args.tokens, args.codebook,
                args.classes, args.dropout, args.dropout)
    model.train()
    model.set_random_ratio(args.ratio)
    optimizer = create_optimizer(model, 4e-4, 0.03)
    scheduler = cosine_with_warmup(optimizer, 62_500, 250_000, 4e-4, 1e-5)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"torch {torch.__version__}; model: C {args.hidden} D {args.depth} H {args.heads} "
          f"I {args.mlp} N {args.tokens} V {args.codebook} K {args.classes} "
          f"({n_params / 1e6:.2f} M params); batch {args.batch}; dropout {args.dropout}; "
          f"label dropout {args.label_dropout}; random-order ratio {args.ratio}; "
          f"threads {torch.get_num_threads()}")

    times, cpu_times = [], []
    for t in range(args.warmup + args.steps):
        tokens = torch.randint(0, args.codebook, (args.batch, args.tokens))
        classes = torch.randint(0, args.classes, (args.batch,))
        cpu_start = time.process_time()
        start = time.perf_counter()
        condition = model.preprocess_condition(classes, cond_drop_prob=args.label_dropout)
        logits, labels = model(tokens, condition, return_labels=True)
        loss, _ = ar_loss(logits, labels, args.codebook)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        loss_value, norm_value = loss.item(), grad_norm.item()
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
        if t >= args.warmup:
            times.append(elapsed)
            cpu_times.append(cpu)
        tag = "  (warm-up)" if t < args.warmup else ""
        print(f"step {t:>3}: {elapsed:.3f} s (cpu {cpu:.2f} s)  loss {loss_value:.4f}  grad norm {norm_value:.4f}{tag}")
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
