#!/usr/bin/env python3
"""Which U-Net widths learn MNIST fastest per second? (issue 13; not part of the tests or CI.)

    node bin/bernoulli-diffusion.js data mnist --out /tmp/mnist
    python3 bench/torch/unet_widths.py --data /tmp/mnist --channels 32 --max-channels 0 [--minutes 7]
    python3 bench/torch/unet_widths.py --data /tmp/mnist --channels 16 --max-channels 64

Trains bench_torch.py's copy of network/unet.rs (28x28, x0 parameterisation, T = 1000, paper
schedule; conv2 and the output start at 0 as in the core) for --minutes of wall time on every core:
batch 32, Adam 2e-3 with 100 warm-up steps and a cosine decay to 0.1 over the steps a 20-second
calibration says fit in 95% of the time, uniform t, EMA 0.995. Then prints one line with the val
bound of the EMA weights on the first 200 val images (100 t-strata, one t per stratum and image,
nats/image). A PyTorch stand-in for the core's own 30-minute bench (npm run bench:quality -- --only
mnist): quick to compare shapes, not the figure of record.
"""
import argparse
import copy
import math
import os
import time

import torch

from bench_torch import Unet, paper_schedule, posterior

T, BATCH, LR = 1000, 32, 2e-3


def read_rows(path):
    rows = [[float(ch) for ch in line.strip()] for line in open(path) if line.strip() and not line.startswith("#")]
    return torch.tensor(rows).view(-1, 1, 28, 28)


def kernel_terms(net, x0, t, b, c):
    """Per-image term of the bound at t (nats): KL of the posterior to the model's for t >= 2, -log p(x0 | x1) at t = 1."""
    ct = c[t].float()[:, None, None, None]
    xt = torch.bernoulli(x0 * (1 - ct) + ct / 2)
    g = torch.sigmoid(net(xt, t)).double().clamp(1e-6, 1 - 1e-6)
    bt, cp = b[t][:, None, None, None], c[t - 1][:, None, None, None]
    xt, x0 = xt.double(), x0.double()
    q = posterior(x0, xt, bt, cp).clamp(1e-12, 1 - 1e-12)
    f = (g * posterior(torch.ones_like(x0), xt, bt, cp) + (1 - g) * posterior(torch.zeros_like(x0), xt, bt, cp)).clamp(1e-12, 1 - 1e-12)
    kl = q * (q / f).log() + (1 - q) * ((1 - q) / (1 - f)).log()
    nll = -(x0 * g.log() + (1 - x0) * (1 - g).log())
    return torch.where((t == 1)[:, None, None, None], nll, kl).sum((1, 2, 3))


@torch.no_grad()
def val_bound(net, val, b, c, strata=100):
    torch.manual_seed(123)
    total = torch.zeros(len(val), dtype=torch.float64)
    for k in range(strata):
        lo, hi = 1 + k * T // strata, (k + 1) * T // strata
        t = torch.randint(lo, hi + 1, (len(val),))
        total += kernel_terms(net, val, t, b, c) * (hi - lo + 1)
    return total.mean().item()


def fresh(args, c):
    net = Unet(T, c, c=args.channels, max_channels=args.max_channels)
    for block in list(net.down_blocks) + list(net.up_blocks):
        torch.nn.init.zeros_(block.conv2.weight)
        torch.nn.init.zeros_(block.conv2.bias)
    torch.nn.init.zeros_(net.output.weight)
    torch.nn.init.zeros_(net.output.bias)
    return net, copy.deepcopy(net), torch.optim.Adam(net.parameters(), lr=LR)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True, help="folder written by `bernoulli-diffusion data mnist`")
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--max-channels", type=int, default=0)
    parser.add_argument("--minutes", type=float, default=7)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(0)
    train, val = read_rows(os.path.join(args.data, "train.txt")), read_rows(os.path.join(args.data, "val.txt"))[:200]
    b, c = paper_schedule(T)

    def step(net, ema, optimiser, i, total):
        lr = LR * min(1, (i + 1) / 100) * (0.1 + 0.45 * (1 + math.cos(math.pi * min(1, i / total))))
        for group in optimiser.param_groups:
            group["lr"] = lr
        rows, t = torch.randint(0, len(train), (BATCH,)), torch.randint(1, T + 1, (BATCH,))
        loss = kernel_terms(net, train[rows], t, b, c).float().mean() * T
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), net.parameters()):
                pe.mul_(0.995).add_(p, alpha=0.005)

    net, ema, optimiser = fresh(args, c)
    start, steps = time.time(), 0
    while time.time() - start < 20:
        step(net, ema, optimiser, steps, 10**9)
        steps += 1
    total = int(args.minutes * 60 * steps / (time.time() - start) * 0.95)
    torch.manual_seed(1)
    net, ema, optimiser = fresh(args, c)
    start, steps = time.time(), 0
    while steps < total and time.time() - start < args.minutes * 60:
        step(net, ema, optimiser, steps, total)
        steps += 1
    parameters = sum(p.numel() for p in net.parameters())
    print(
        f"widths {net.widths} ({parameters} parameters): {steps} steps in {time.time() - start:.0f} s, "
        f"val bound {val_bound(ema, val, b, c):.2f} nats/image (first 200 val images, 100 strata)",
        flush=True,
    )


if __name__ == "__main__":
    main()
