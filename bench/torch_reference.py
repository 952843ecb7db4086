#!/usr/bin/env python3
"""PyTorch reference of the TxFM model in `crates/txfm/src/model/`, for the training benchmark.

The module below is the Rust model layer for layer: the same parameters (names, shapes, init), the
same ops in the same order (index_select embedding + value channel, CLS, pre-norm blocks with fused
SDPA under a key-padding mask, LayerScale, per-sample drop path, final LayerNorm on the CLS,
residual-MLP decoder, count activation, loss averaged over the profiled genes). The parameter
count is checked against a port of the Rust `num_parameters` formula.

    source scripts/env.sh
    python bench/torch_reference.py --d-model 256 --blocks 6 --heads 8 --k 1024 --genes 20000 \
        --batch 16 --steps 20 --warmup 3 [--embed] [--threads 2] [--device cuda] [--json]

Training mode times `--steps` steps of forward + backward + AdamW step after `--warmup` untimed
ones; `--embed` times forward-only CLS embedding (eval mode, `torch.inference_mode()`). Batches are
synthetic and deterministic (see `synthetic_batch`), built and moved to the device before timing.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# --------------------------------------------------------------------------------------------
# Model: mirrors crates/txfm/src/model/{block,encoder,decoder,activation,loss,txfm}.rs
# --------------------------------------------------------------------------------------------

INIT_STD = 0.02  # N(0, 0.02²) weights, zero biases (the ViT/timm convention, `block::linear`)


def linear(in_dim: int, out_dim: int) -> nn.Linear:
    layer = nn.Linear(in_dim, out_dim, bias=True)
    nn.init.normal_(layer.weight, 0.0, INIT_STD)
    nn.init.zeros_(layer.bias)
    return layer


def layer_norm(dim: int) -> nn.LayerNorm:
    # tch's LayerNormConfig default: eps 1e-5, elementwise affine (weight 1, bias 0).
    return nn.LayerNorm(dim, eps=1e-5, elementwise_affine=True)


def drop_path(x: torch.Tensor, p: float, train: bool) -> torch.Tensor:
    """Drops each sample's whole residual branch with probability p, rescaling survivors."""
    if not train or p == 0.0:
        return x
    n = x.shape[0]
    keep = torch.empty((n, 1, 1), dtype=torch.float32, device=x.device).bernoulli_(1.0 - p).to(x.dtype)
    return x * keep / (1.0 - p)


class Attention(nn.Module):
    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.qkv = linear(d_model, 3 * d_model)
        self.proj = linear(d_model, d_model)
        self.n_heads = n_heads

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """x: [n, t, d]; keep: [n, 1, 1, t] bool, True at keys that may be attended to."""
        n, t, d = x.shape
        qkv = self.qkv(x).view(n, t, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        # Bool attn_mask: True = takes part in attention, the same semantics as the Rust `keep`.
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, dropout_p=0.0, is_causal=False)
        return self.proj(out.transpose(1, 2).reshape(n, t, d))


class Block(nn.Module):
    """x = x + drop_path(ls1 · attn(norm1(x))); x = x + drop_path(ls2 · mlp(norm2(x)))."""

    def __init__(self, d_model: int, n_heads: int, mlp_ratio: int, layer_scale_init: float, drop_path: float):
        super().__init__()
        self.norm1 = layer_norm(d_model)
        self.attn = Attention(d_model, n_heads)
        self.ls1 = nn.Parameter(torch.full((d_model,), layer_scale_init))
        self.norm2 = layer_norm(d_model)
        self.fc1 = linear(d_model, mlp_ratio * d_model)
        self.fc2 = linear(mlp_ratio * d_model, d_model)
        self.ls2 = nn.Parameter(torch.full((d_model,), layer_scale_init))
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor, keep: torch.Tensor, train: bool) -> torch.Tensor:
        x = x + drop_path(self.attn(self.norm1(x), keep) * self.ls1, self.drop_path, train)
        mlp = self.fc2(F.gelu(self.fc1(self.norm2(x)), approximate="none"))
        return x + drop_path(mlp * self.ls2, self.drop_path, train)


class Encoder(nn.Module):
    def __init__(self, cfg: dict, n_genes: int):
        super().__init__()
        d, nb = cfg["d_model"], cfg["n_blocks"]
        self.gene_embedding = nn.Parameter(torch.randn(n_genes, d - 1) * INIT_STD)  # [G, d - 1]
        self.cls = nn.Parameter(torch.randn(1, 1, d) * INIT_STD)  # [1, 1, d]
        # Stochastic depth ramps linearly from 0 (first block) to drop_path (last block).
        rates = [cfg["drop_path"] * i / (nb - 1) if nb > 1 else cfg["drop_path"] for i in range(nb)]
        self.blocks = nn.ModuleList(
            Block(d, cfg["n_heads"], cfg["mlp_ratio"], cfg["layer_scale_init"], r) for r in rates
        )
        self.norm = layer_norm(d)

    def forward(self, genes, values, pad, train: bool) -> torch.Tensor:
        """genes, values, pad: [n, k] → CLS output [n, d] after the final LayerNorm."""
        n, k = genes.shape
        embedding = self.gene_embedding.index_select(0, genes.reshape(-1)).view(n, k, -1)
        tokens = torch.cat([embedding, values.to(embedding.dtype).unsqueeze(-1)], -1)
        d = tokens.shape[2]
        x = torch.cat([self.cls.expand(n, 1, d), tokens], 1)
        cls_keep = torch.ones((n, 1), dtype=torch.bool, device=x.device)
        keep = torch.cat([cls_keep, pad.logical_not()], 1).view(n, 1, 1, k + 1)
        for block in self.blocks:
            x = block(x, keep, train)
        return self.norm(x[:, 0])


class ResidualLayer(nn.Module):
    def __init__(self, h: int):
        super().__init__()
        self.norm = layer_norm(h)
        self.fc1 = linear(h, h)
        self.fc2 = linear(h, h)

    def forward(self, x):
        return x + self.fc2(F.gelu(self.fc1(self.norm(x)), approximate="none"))


class Decoder(nn.Module):
    """decoder_layers = 0 is the linear decoder; otherwise proj → residual layers → LayerNorm."""

    def __init__(self, cfg: dict, n_genes: int):
        super().__init__()
        d, nl, h = cfg["d_model"], cfg["decoder_layers"], cfg["decoder_hidden"]
        if nl == 0:
            self.proj, self.layers, self.norm, width = None, nn.ModuleList(), None, d
        else:
            self.proj = linear(d, h)
            self.layers = nn.ModuleList(ResidualLayer(h) for _ in range(nl))
            self.norm = layer_norm(h)
            width = h
        self.out = linear(width, n_genes)  # weight [G, width]: the decoder gene weights

    def forward(self, cls):
        if self.proj is None:
            return self.out(cls)
        x = self.proj(cls)
        for layer in self.layers:
            x = layer(x)
        return self.out(self.norm(x))


def apply_activation(kind: str, z, library_size: float, profiled):
    max_value = math.log1p(library_size)
    if kind == "rectified_tanh":
        return torch.tanh(z / (4.0 * math.e)).relu() * max_value
    if kind == "relu":
        return z.relu()
    if kind == "clamped_relu":
        return z.clamp(0.0, max_value)
    if kind == "softmax":
        if profiled is not None:
            z = z.masked_fill(profiled.logical_not(), float("-inf"))
        return (z.log_softmax(-1, dtype=torch.float32).exp() * library_size).log1p()
    raise ValueError(kind)


def elementwise_loss(kind: str, pred, target, log_theta):
    if kind == "poisson":
        return pred.exp() - pred * target.exp()
    if kind == "mse":
        return (pred - target).square()
    if kind == "smooth_l1":
        d = (pred - target).abs()
        return torch.where(d < 1.0, d.square() * 0.5, d - 0.5)
    if kind == "negative_binomial":
        theta = log_theta.exp()
        y = target.exp()
        log_theta_mu = torch.logaddexp(log_theta, pred)
        return (
            theta.lgamma() + (y + 1.0).lgamma() - (y + theta).lgamma()
            - theta * (log_theta - log_theta_mu) - y * (pred - log_theta_mu)
        )
    raise ValueError(kind)


def masked_mean(values, mask):
    kept = torch.where(mask, values, torch.zeros_like(values))
    return kept.sum() / mask.sum().to(kept.dtype).clamp_min(1.0)


class TxFm(nn.Module):
    def __init__(self, cfg: dict, n_genes: int):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg, n_genes)
        self.decoder = Decoder(cfg, n_genes)
        self.log_theta = nn.Parameter(torch.zeros(n_genes)) if cfg["loss"] == "negative_binomial" else None

    def encode(self, genes, values, pad, train: bool):
        return self.encoder(genes, values, pad, train)

    def forward(self, batch: dict, train: bool):
        """(loss, pred [n, G], cls [n, d]), like `TxFm::forward`."""
        cls = self.encode(batch["genes"], batch["values"], batch["pad"], train)
        # Activation and loss in f32 (a no-op without autocast; under bf16 autocast the decoder
        # logits come out in bf16 and exp() of them would lose the loss's precision).
        logits = self.decoder(cls).float()
        pred = apply_activation(self.cfg["activation"], logits, self.cfg["library_size"], batch["mask"])
        lt = self.log_theta.float() if self.log_theta is not None else None
        loss = masked_mean(elementwise_loss(self.cfg["loss"], pred, batch["target"], lt), batch["mask"])
        return loss, pred, cls


def num_parameters(cfg: dict, n_genes: int) -> int:
    """Port of `txfm::model::num_parameters` (encoder.rs, block.rs, decoder.rs, txfm.rs)."""
    d, r, g = cfg["d_model"], cfg["mlp_ratio"], n_genes
    norms = 2 * 2 * d
    attn = (3 * d * d + 3 * d) + (d * d + d)
    mlp = (r * d * d + r * d) + (r * d * d + d)
    block = norms + attn + mlp + 2 * d
    encoder = g * (d - 1) + d + cfg["n_blocks"] * block + 2 * d
    nl, h = cfg["decoder_layers"], cfg["decoder_hidden"]
    if nl == 0:
        decoder = g * d + g
    else:
        decoder = (d * h + h) + nl * (2 * h + 2 * (h * h + h)) + 2 * h + g * h + g
    dispersion = g if cfg["loss"] == "negative_binomial" else 0
    return encoder + decoder + dispersion


# --------------------------------------------------------------------------------------------
# Synthetic batches: a counter-based generator (splitmix64) so that any implementation, the Rust
# benchmark included, can rebuild exactly the same batches without sharing an RNG.
# --------------------------------------------------------------------------------------------

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def flops_per_sample(cfg: dict, n_genes: int, embed: bool) -> float:
    """Matmul FLOPs per sample, the port of `txfm::model::flops` (2 per multiply-add; training = 3x forward)."""
    t, d, r = cfg["n_visible"] + 1, cfg["d_model"], cfg["mlp_ratio"]
    encoder = cfg["n_blocks"] * (2.0 * t * (4 * d * d + 2 * r * d * d) + 4.0 * t * t * d)
    if embed:
        return encoder
    h = cfg["decoder_hidden"]
    trunk = 0.0 if cfg["decoder_layers"] == 0 else d * h + cfg["decoder_layers"] * 2.0 * h * h
    width = d if cfg["decoder_layers"] == 0 else h
    return 3.0 * (encoder + 2.0 * (trunk + n_genes * width))


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser applied elementwise to uint64 (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def uniforms(seed: int, stream: int, b: int, n: int, g: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes h[s, j] = splitmix64(splitmix64(4·seed + stream) XOR ((b·n + s)·G + j)) for batch b,
    and u = (h >> 11) · 2⁻⁵³ ∈ [0, 1)."""
    base = splitmix64(np.array([4 * seed + stream], dtype=np.uint64))[0]
    idx = (np.uint64(b * n) + np.arange(n, dtype=np.uint64))[:, None] * np.uint64(g) + np.arange(g, dtype=np.uint64)
    h = splitmix64(idx ^ base)
    return h, (h >> np.uint64(11)).astype(np.float64) * 2.0**-53


def synthetic_batch(seed: int, b: int, n: int, k: int, g: int, zero_fraction: float = 0.7) -> dict:
    """Batch b (0-based) of n samples over a vocabulary of g genes, k visible genes each.

    - target [n, g] f32: with u from stream 0, 0 if u < zero_fraction (≈70% zeros), else
      ln(1 + 1000·(u − zero_fraction)/(1 − zero_fraction)) ∈ [0, ln 1001): log1p-like values.
    - visible genes [n, k] i64: per sample, the k genes with the smallest stream-1 hash h, in
      increasing order of h (ties by gene index): k distinct genes, uniformly without replacement.
    - visible values [n, k] f32: the target at those genes (zeros included).
    - pad [n, k]: all false (every sample has ≥ k profiled genes); mask [n, g]: all true (every gene
      is profiled, so the loss covers all of them).
    """
    assert k <= g, "K must not exceed G"
    _, u = uniforms(seed, 0, b, n, g)
    scaled = (u - zero_fraction) / (1.0 - zero_fraction)
    target = np.where(u < zero_fraction, 0.0, np.log1p(1000.0 * np.clip(scaled, 0.0, None))).astype(np.float32)
    h, _ = uniforms(seed, 1, b, n, g)
    genes = np.argsort(h, axis=1, kind="stable")[:, :k].astype(np.int64)
    values = np.take_along_axis(target, genes, axis=1)
    return {
        "genes": torch.from_numpy(genes),
        "values": torch.from_numpy(np.ascontiguousarray(values)),
        "pad": torch.zeros((n, k), dtype=torch.bool),
        "target": torch.from_numpy(target),
        "mask": torch.ones((n, g), dtype=torch.bool),
    }


# --------------------------------------------------------------------------------------------
# Benchmark
# --------------------------------------------------------------------------------------------


def decays(p: torch.Tensor) -> bool:
    """`train::optim::decays`: decay only matrices, i.e. tensors with at least two dimensions longer
    than 1 (linear weights, gene embeddings) — not biases, norms, LayerScale, log θ, nor the CLS
    token [1, 1, d]."""
    return sum(1 for s in p.shape if s > 1) >= 2


def adamw(model: nn.Module, lr: float, weight_decay: float, foreach: bool | None = None) -> torch.optim.AdamW:
    """`train::optim::AdamW` with `OptimizerConfig::default()`'s betas and eps."""
    decay, no_decay = [], []
    for p in model.parameters():
        (decay if decays(p) else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    # foreach=None: PyTorch's default (single-tensor loop on CPU, multi-tensor kernels on CUDA).
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-6, foreach=foreach)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--blocks", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--mlp-ratio", type=int, default=4)
    p.add_argument("--k", type=int, default=256, help="visible genes per sample (K)")
    p.add_argument("--genes", type=int, default=2000, help="vocabulary size (G)")
    p.add_argument("--decoder-layers", type=int, default=4, help="residual decoder layers; 0 = linear decoder")
    p.add_argument("--decoder-hidden", type=int, default=None, help="decoder width (default: d_model)")
    p.add_argument("--drop-path", type=float, default=0.1)
    p.add_argument("--layer-scale-init", type=float, default=0.1)
    p.add_argument("--library-size", type=float, default=1e5)
    p.add_argument("--activation", default="rectified_tanh", choices=["rectified_tanh", "relu", "clamped_relu", "softmax"])
    p.add_argument("--loss", default="poisson", choices=["poisson", "mse", "smooth_l1", "negative_binomial"])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=20, help="timed steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before timing")
    p.add_argument("--distinct-batches", type=int, default=4, help="step i (warmup included) uses batch i mod this")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=None,
                   help="default 1 / (lr · (warmup + steps)), the Rust default 1 / (lr · total_steps)")
    p.add_argument("--no-foreach", action="store_true",
                   help="per-tensor AdamW/clipping loops also on CUDA (the Rust optimiser's way)")
    p.add_argument("--grad-clip", type=float, default=1.0, help="global gradient-norm clip (0: none)")
    p.add_argument("--embed", action="store_true", help="time forward-only CLS embedding (eval, inference_mode)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    p.add_argument("--no-autocast", action="store_true", help="on CUDA, run in f32 instead of autocast")
    p.add_argument("--cpu-autocast", action="store_true",
                   help="on CPU, run under autocast too (txfm: TXFM_CPU_AUTOCAST=on)")
    p.add_argument("--autocast-dtype", default="bfloat16", choices=["bfloat16", "float16"],
                   help="reduced type of autocast (CUDA, or CPU with --cpu-autocast)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON line instead of text")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (the step's forward; backward follows)")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="the device's peak dense TFLOP/s at the run's precision, for MFU (H100/H200 SXM bf16: 989)")
    a = p.parse_args(argv)

    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    autocast = (device.type == "cuda" or a.cpu_autocast) and not a.no_autocast
    cfg = {
        "d_model": a.d_model, "n_blocks": a.blocks, "n_heads": a.heads, "mlp_ratio": a.mlp_ratio,
        "n_visible": a.k, "drop_path": a.drop_path, "layer_scale_init": a.layer_scale_init,
        "decoder_layers": a.decoder_layers,
        "decoder_hidden": a.decoder_hidden if a.decoder_hidden is not None else a.d_model,
        "activation": a.activation, "library_size": a.library_size, "loss": a.loss,
    }
    if a.d_model < 2 or a.d_model % a.heads:
        p.error("heads must divide d_model (≥ 2)")

    torch.manual_seed(a.seed)
    model = TxFm(cfg, a.genes).to(device)
    params = sum(t.numel() for t in model.parameters() if t.requires_grad)
    expected = num_parameters(cfg, a.genes)
    assert params == expected, f"parameter count {params} != Rust formula {expected}"

    batches = [
        {key: t.to(device) for key, t in synthetic_batch(a.seed, b, a.batch, a.k, a.genes).items()}
        for b in range(a.distinct_batches)
    ]

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def amp():
        return torch.autocast(device_type=device.type, dtype=getattr(torch, a.autocast_dtype), enabled=autocast)

    # Fingerprint of batch 0 (the Rust `txfm bench` prints the same): shows both sides see the same data.
    b0 = synthetic_batch(a.seed, 0, a.batch, a.k, a.genes)
    g0 = b0["genes"].numpy()
    check = {
        "target_sum": float(b0["target"].numpy().astype(np.float64).sum()),
        "genes_sum": int(g0.sum()),
        "genes_weighted": int((g0 * np.arange(1, a.k + 1, dtype=np.int64)).sum()),
        "values_sum": float(b0["values"].numpy().astype(np.float64).sum()),
    }

    wd = a.weight_decay if a.weight_decay is not None else 1.0 / (a.lr * (a.warmup + a.steps))
    encode = torch.compile(model.encode) if a.compile else model.encode
    forward = torch.compile(model) if a.compile else model
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    if a.embed:
        model.eval()

        def step(i):
            with torch.inference_mode(), amp():
                b = batches[i % len(batches)]
                return encode(b["genes"], b["values"], b["pad"], False)
    else:
        model.train()
        opt = adamw(model, a.lr, wd, False if a.no_foreach else None)

        def step(i):
            with amp():
                loss, _, _ = forward(batches[i % len(batches)], True)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if a.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), a.grad_clip, foreach=False if a.no_foreach else None)
            opt.step()
            return loss

    for i in range(a.warmup):
        out = step(i)
    sync()
    step_s = []
    start = time.perf_counter()
    for i in range(a.warmup, a.warmup + a.steps):
        t0 = time.perf_counter()
        out = step(i)
        sync()
        step_s.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    samples_per_s = a.batch * a.steps / elapsed
    # The last loss (training) is a sanity check; the CLS outputs need no read-back beyond sync().
    last = float(out.detach()) if not a.embed and (a.steps or a.warmup) else None

    flops = flops_per_sample(cfg, a.genes, a.embed)
    achieved = flops * samples_per_s / 1e12
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    result = {
        "impl": "pytorch",
        "mode": "embed" if a.embed else "train",
        "samples_per_s": round(samples_per_s, 2),
        "params": params,
        "elapsed_s": round(elapsed, 3),
        "median_step_ms": round(1e3 * float(np.median(step_s)), 2) if step_s else None,
        "min_step_ms": round(1e3 * min(step_s), 2) if step_s else None,
        "max_step_ms": round(1e3 * max(step_s), 2) if step_s else None,
        "d_model": a.d_model, "blocks": a.blocks, "heads": a.heads, "mlp_ratio": a.mlp_ratio,
        "k": a.k, "genes": a.genes, "decoder_layers": a.decoder_layers,
        "decoder_hidden": cfg["decoder_hidden"], "activation": a.activation, "loss": a.loss,
        "batch": a.batch, "steps": a.steps, "warmup": a.warmup, "distinct_batches": a.distinct_batches,
        "weight_decay": None if a.embed else wd,
        "grad_clip": None if a.embed else a.grad_clip, "threads": a.threads, "device": str(device),
        "autocast": a.autocast_dtype if autocast else None, "torch": torch.__version__, "python": platform.python_version(),
        "last_loss": last,
        "check": check,
        "compile": a.compile,
        "flops_per_sample": flops,
        "achieved_tflops": round(achieved, 3),
        "mfu": round(achieved / a.peak_tflops, 4) if a.peak_tflops else None,
        "peak_memory_mib": round(peak, 1) if peak is not None else None,
    }
    if a.json:
        print(json.dumps(result))
    else:
        mode = "embedding (forward, eval)" if a.embed else "training (fwd + bwd + AdamW)"
        print(f"pytorch {mode}: {params:,} params (= Rust num_parameters), batch {a.batch}, "
              f"{a.steps} steps in {elapsed:.2f} s, median step {result['median_step_ms']} ms")
        print(f"batch 0 check: target_sum {check['target_sum']:.6f}, values_sum {check['values_sum']:.6f}, "
              f"genes_sum {check['genes_sum']}, genes_weighted {check['genes_weighted']}")
        print(f"samples/s: {samples_per_s:.2f}")
        mfu = f", MFU {100 * result['mfu']:.1f}% of {a.peak_tflops:g}" if a.peak_tflops else ""
        mem = f", peak memory {peak:,.0f} MiB allocated" if peak is not None else ""
        print(f"model FLOPs: {flops / 1e9:,.1f} GFLOP/sample, {achieved:.2f} TFLOP/s{mfu}{mem}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
