"""The benchmark's inv decoder (Tx-Evaluation's DecoderModel at replogle_eval_reconstruct.yaml:
`depth` Linear+ReLU layers stepping from the embedding width to the genes, then a Linear; MSE;
AdamW lr 1e-4 / wd 1e-6; batches of 512; 30 epochs) trained in PyTorch on random data of the
given shape: the peer of one decoder fit inside `txfm bench perturb`, to tell whether its time
is the arithmetic's or the implementation's.

    python3 bench/inv_decoder_torch.py --dim 384 --n-vars 2000 --n 2650 [--threads 2]

Prints one JSON line: seconds, samples/s and the achieved GFLOP/s (6 · weights per sample).
"""
import argparse
import json
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dim", type=int, required=True)
    ap.add_argument("--n-vars", type=int, default=2000)
    ap.add_argument("--n", type=int, default=2650)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    widths = [a.dim] + [int(a.dim + (a.n_vars - a.dim) * i / (a.depth + 1)) for i in range(1, a.depth + 1)] + [a.n_vars]
    layers = []
    for i, (w0, w1) in enumerate(zip(widths, widths[1:])):
        layers.append(torch.nn.Linear(w0, w1))
        if i < len(widths) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-6)
    x, y = torch.randn(a.n, a.dim), torch.randn(a.n, a.n_vars)
    weights = sum(w0 * w1 for w0, w1 in zip(widths, widths[1:]))
    t0 = time.perf_counter()
    for _ in range(a.epochs):
        for idx in torch.randperm(a.n).split(a.batch):
            loss = torch.nn.functional.mse_loss(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    s = time.perf_counter() - t0
    samples = a.n * a.epochs
    print(json.dumps({"impl": "pytorch", "dim": a.dim, "n_vars": a.n_vars, "n": a.n, "widths": widths, "threads": a.threads,
                      "seconds": round(s, 2), "samples_per_s": round(samples / s, 1),
                      "gflops": round(6 * weights * samples / s / 1e9, 1), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
