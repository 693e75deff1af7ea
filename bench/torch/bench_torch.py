#!/usr/bin/env python3
"""PyTorch reference of the bench's networks (issue 17): the same models, objective and shapes as
the wasm core, on every core of the machine (torch.set_num_threads(os.cpu_count())).

    python3 bench/torch/bench_torch.py CASE [--seconds S] [--repeats R] [--T T] [--threads N]

CASE: train_paper_b2048 | train_paper_b64 | train_default | train_unet_mnist | sample_b1024. Prints one JSON line
{"value": median, "unit": ..., "values": [...], "threads": n, "torch": version}. bench/bench.js
runs it when `import torch` works; not part of the package, the tests or CI.

What each case computes (crate/src/network/paper.rs, mlp.rs, objective.rs, schedule.rs):
- paper network: h1 = relu(x W0 + b0), h2 = relu(h1 W1 + b1), logits = h2 R_t + r_t (a readout
  per t), x = the bits x_t; L = 20, H = 50, T = 2000, direct parameterisation: p = sigmoid(z).
- full-sum objective: for every t = 1..T, x_t ~ q(x_t | x0) (bit = 1 with probability
  x0 (1 - c_t) + c_t / 2), the term KL(q(x_{t-1} | x_t, x0) || p) summed over bits, in bits;
  passes of max(1, 256 // batch) consecutive t as in objective.rs (FULL_PASS_ROWS = 256), the
  gradient accumulated over the passes, then AdamW (lr 1e-3, no weight decay) with clipping at 1.
  A step at batch 2048 is 2000 passes (seconds), so the timing covers the first passes of a step
  (whole passes, at least --seconds) plus one optimiser update, as bench/tfjs-paper.js does.
- train_default: the default mlp (H = 96, 2 residual blocks, time embedding E = 32, input
  [s, λ_t s] with s = 2 x_t - 1, logits = h W_out + b_out + λ_t s), x0 parameterisation
  (f1 = g A1 + (1 - g) B1 with g = sigmoid(z) and A, B the posteriors for x0 = 1, 0), batch 256,
  one t per example drawn by importance sampling over 50 bins of t (p ∝ RMS of the bin's recent
  terms, mixed with 25 % uniform, the term weighted by 1/(T p_t)), AdamW with clipping.
- train_unet_mnist: the U-Net of unet.rs at MNIST shape (28x28, C = 32, one block per level,
  4 levels 28 -> 14 -> 7 -> 4, zero padding, position embedding, time MLP E = 32 -> 2C -> 2C ->
  7 chunks of C), x0 parameterisation, T = 1000, batch 128, one t per image drawn uniformly
  (objective `sampled`: the term weighted by T), AdamW with clipping; images/s. Same layers and
  shapes as ours; PyTorch's own memory layout (NCHW) and convolution kernels.
- sample_b1024: the reverse chain of the paper network: x_T uniform, then for t = T..1
  x_{t-1} ~ Bernoulli(sigmoid(z)), 1024 sequences; sequence-steps per second.
"""
import argparse
import json
import math
import os
import resource
import statistics
import time

import torch

L, H, T_DEFAULT = 20, 50, 2000
FULL_PASS_ROWS = 256


def paper_schedule(T):
    """b_t = 1/(T - t + 1), c_t = t/T (index t = 0..T)."""
    t = torch.arange(T + 1, dtype=torch.float64)
    b = torch.where(t > 0, 1.0 / (T - t + 1), torch.zeros_like(t))
    c = t / T
    return b, c


def posterior(x0, xt, b_t, c_prev):
    """q(x_{t-1} = 1 | x_t, x0) (bernoulli.rs::posterior), broadcasting."""
    a1 = x0 * (1 - c_prev) + c_prev / 2
    a0 = (1 - x0) * (1 - c_prev) + c_prev / 2
    l1 = xt * (1 - b_t / 2) + (1 - xt) * (b_t / 2)
    l0 = xt * (b_t / 2) + (1 - xt) * (1 - b_t / 2)
    return a1 * l1 / (a1 * l1 + a0 * l0)


def kl_bits(q1, f1_logit=None, f1=None):
    """KL(B(q1) || B(f1)) per element in bits; f1 given as a logit (direct) or a probability."""
    q0 = 1 - q1
    neg_entropy = torch.xlogy(q1, q1) + torch.xlogy(q0, q0)
    if f1_logit is not None:
        ce = q1 * torch.nn.functional.softplus(-f1_logit) + q0 * torch.nn.functional.softplus(f1_logit)
    else:
        ce = -(q1 * torch.log(f1) + q0 * torch.log1p(-f1))
    return (neg_entropy + ce).clamp_min(0) / math.log(2)


def bench_batch(batch):
    """The bench's x0 (bench.js benchBatchOf): bit i of row r is 1 when i ≡ r (mod 5)."""
    r = torch.arange(batch).unsqueeze(1)
    i = torch.arange(L).unsqueeze(0)
    return ((i - r % 5) % 5 == 0).float()


class Paper(torch.nn.Module):
    def __init__(self, T):
        super().__init__()
        self.l0 = torch.nn.Linear(L, H)
        self.l1 = torch.nn.Linear(H, H)
        self.readout_w = torch.nn.Parameter(torch.randn(T, H, L) / math.sqrt(H))
        self.readout_b = torch.nn.Parameter(torch.zeros(T, L))

    def forward(self, x, t_index, steps):
        """x: (steps·rows) × L, rows t-major; t_index: the steps' t - 1 (a tensor of `steps`)."""
        h = torch.relu(self.l1(torch.relu(self.l0(x))))
        h = h.view(steps, -1, H)
        return torch.baddbmm(self.readout_b[t_index].unsqueeze(1), h, self.readout_w[t_index])  # steps × rows × L


def make_optimiser(model, lr=1e-3):
    return torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)


def optimiser_update(model, optimiser):
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimiser.step()
    optimiser.zero_grad(set_to_none=False)


def train_paper(batch, T, seconds, repeats):
    torch.manual_seed(0)
    model = Paper(T)
    optimiser = make_optimiser(model)
    b, c = paper_schedule(T)
    x0 = bench_batch(batch)
    steps_per_pass = max(1, min(T, FULL_PASS_ROWS // batch))

    def one_pass(first):
        steps = min(steps_per_pass, T + 1 - first)
        t = torch.arange(first, first + steps)
        ct = c[t].float().view(steps, 1, 1)
        xt = torch.bernoulli((x0 * (1 - ct) + ct / 2).expand(steps, batch, L))
        q1 = posterior(x0, xt, b[t].float().view(steps, 1, 1), c[t - 1].float().view(steps, 1, 1))
        logits = model(xt.reshape(steps * batch, L), t - 1, steps)
        loss = kl_bits(q1, f1_logit=logits).sum()
        loss.backward()
        return steps * batch

    one_pass(1)  # warm-up
    optimiser_update(model, optimiser)
    values = []
    for _ in range(repeats):
        done, first = 0, 1
        start = time.perf_counter()
        while True:
            done += one_pass(first)
            first = first + steps_per_pass if first + steps_per_pass <= T else 1
            if time.perf_counter() - start >= seconds:
                break
        optimiser_update(model, optimiser)
        values.append(done / (time.perf_counter() - start))
    return {"value": statistics.median(values), "unit": "example-timesteps/s", "values": values, "steps_per_pass": steps_per_pass}


class Mlp(torch.nn.Module):
    """The default network (mlp.rs), x0 parameterisation."""

    def __init__(self, T, c, hidden=96, layers=2, embedding=32):
        super().__init__()
        self.input = torch.nn.Linear(2 * L, hidden)
        self.time = torch.nn.Linear(embedding, hidden, bias=False)
        self.blocks = torch.nn.ModuleList(torch.nn.ModuleList([torch.nn.Linear(hidden, hidden), torch.nn.Linear(hidden, hidden)]) for _ in range(layers))
        self.output = torch.nn.Linear(hidden, L)
        torch.nn.init.zeros_(self.output.weight)
        tau = 1000.0 * torch.arange(1, T + 1, dtype=torch.float64) / T
        half = embedding // 2
        omega = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / half)
        angles = tau.unsqueeze(1) * omega.unsqueeze(0)
        self.register_buffer("embedding", torch.cat([torch.sin(angles), torch.cos(angles)], 1).float())
        rate = c[1:].clamp_min(1e-12)
        self.register_buffer("evidence", torch.log((1 - rate / 2) / (rate / 2)).float())  # λ_t, x0 parameterisation

    def forward(self, xt, t):
        s = 2 * xt - 1
        lam = self.evidence[t - 1].unsqueeze(1)
        h = self.input(torch.cat([s, lam * s], 1)) + self.time(self.embedding[t - 1])
        for fc1, fc2 in self.blocks:
            h = h + fc2(torch.relu(fc1(h)))
        return self.output(h) + lam * s


def train_default(T, seconds, repeats, batch=256, bins=50, history=256, uniform_share=0.25):
    torch.manual_seed(0)
    b, c = paper_schedule(T)
    model = Mlp(T, c)
    optimiser = make_optimiser(model, lr=2e-3)
    x0 = bench_batch(batch)
    bin_of = (torch.arange(T) * bins) // T  # bin of t - 1
    bin_size = torch.bincount(bin_of, minlength=bins).double()
    values_seen = torch.zeros(bins, history, dtype=torch.float64)
    counts = torch.zeros(bins, dtype=torch.long)

    def step():
        # importance distribution over t (objective.rs ImportanceHistory::probabilities)
        if bool((counts >= 10).all()):
            rms = (values_seen.pow(2).sum(1) / counts.clamp_max(history)).sqrt()
            p = (1 - uniform_share) * rms[bin_of] / (bin_size * rms).sum() + uniform_share / T
        else:
            p = torch.full((T,), 1.0 / T, dtype=torch.float64)
        t = torch.multinomial(p, batch, replacement=True) + 1
        weight = (1.0 / p[t - 1]).float().unsqueeze(1)
        ct = c[t].float().unsqueeze(1)
        xt = torch.bernoulli(x0 * (1 - ct) + ct / 2)
        bt, cp = b[t].float().unsqueeze(1), c[t - 1].float().unsqueeze(1)
        q1 = posterior(x0, xt, bt, cp)
        a1, b1 = posterior(torch.ones_like(x0), xt, bt, cp), posterior(torch.zeros_like(x0), xt, bt, cp)
        g = torch.sigmoid(model(xt, t))
        f1 = (g * a1 + (1 - g) * b1).clamp(1e-30, 1 - 1e-7)
        terms = kl_bits(q1, f1=f1).sum(1, keepdim=True)
        (terms * weight).sum().backward()
        optimiser_update(model, optimiser)
        with torch.no_grad():
            k = bin_of[t - 1]
            for kk, v in zip(k.tolist(), terms.squeeze(1).tolist()):
                values_seen[kk, counts[kk] % history] = v
                counts[kk] += 1

    for _ in range(20):
        step()  # warm-up
    values = []
    for _ in range(repeats):
        steps, start = 0, time.perf_counter()
        while True:
            step()
            steps += 1
            if time.perf_counter() - start >= seconds:
                break
        values.append(steps * batch / (time.perf_counter() - start))
    return {"value": statistics.median(values), "unit": "examples/s", "values": values}


class UnetBlock(torch.nn.Module):
    """block(h) = conv2(relu(conv1(relu(h)) + τ_k)) + (h, or skip(h) when the channels differ)."""

    def __init__(self, c_in, c):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(c_in, c, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(c, c, 3, padding=1)
        self.skip = torch.nn.Conv2d(c_in, c, 1, bias=False) if c_in != c else None

    def forward(self, h, tau):
        m = self.conv1(torch.relu(h)) + tau[:, :, None, None]
        y = self.conv2(torch.relu(m))
        return y + (self.skip(h) if self.skip is not None else h)


class Unet(torch.nn.Module):
    """network/unet.rs at a 2-D grid, zero padding, one block per level, x0 parameterisation."""

    def __init__(self, T, c_schedule, side=28, c=32, embedding=32, max_channels=0):
        super().__init__()
        sides = [side]
        while sides[-1] > 4:
            sides.append((sides[-1] + 1) // 2)
        levels = len(sides)
        # channels per level (unet.rs level_widths): min(c 2^j, max_channels), or c everywhere when 0
        w = [c if max_channels == 0 else min(c * 2**j, max(max_channels, c)) for j in range(levels)]
        self.sides, self.widths = sides, w
        self.chunks = w + w[:-1][::-1]  # one τ chunk per block, in the order the blocks run
        d = 2 * c
        self.stem = torch.nn.Conv2d(2, c, 3, padding=1)
        self.position = torch.nn.Parameter(torch.empty(1, c, side, side).uniform_(-0.1, 0.1))
        self.fc1, self.fc2 = torch.nn.Linear(embedding, d), torch.nn.Linear(d, d)
        self.proj = torch.nn.Linear(d, sum(self.chunks))
        self.down_blocks = torch.nn.ModuleList(UnetBlock(w[j], w[j]) for j in range(levels))
        self.downsample = torch.nn.ModuleList(torch.nn.Conv2d(w[j], w[j + 1], 3, stride=2, padding=1) for j in range(levels - 1))
        self.upsample = torch.nn.ModuleList(torch.nn.Conv2d(w[j + 1], w[j], 3, padding=1) for j in range(levels - 1))
        self.up_blocks = torch.nn.ModuleList(UnetBlock(2 * w[j], w[j]) for j in range(levels - 1))
        self.output = torch.nn.Conv2d(c, 1, 1)
        tau = 1000.0 * torch.arange(1, T + 1, dtype=torch.float64) / T
        half = embedding // 2
        omega = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / half)
        angles = tau.unsqueeze(1) * omega.unsqueeze(0)
        self.register_buffer("embedding", torch.cat([torch.sin(angles), torch.cos(angles)], 1).float())
        rate = c_schedule[1:].clamp_min(1e-12)
        self.register_buffer("evidence", torch.log((1 - rate / 2) / (rate / 2)).float())

    def forward(self, xt, t):
        """xt: rows × 1 × side × side bits; logits of P(x0 = 1 | x_t), same shape."""
        s = 2 * xt - 1
        lam = self.evidence[t - 1][:, None, None, None]
        h = self.stem(torch.cat([s, lam * s], 1)) + self.position
        time_hidden = torch.relu(self.fc2(torch.relu(self.fc1(self.embedding[t - 1]))))
        tau = self.proj(time_hidden).split(self.chunks, 1)
        k, skips = 0, []
        for j, block in enumerate(self.down_blocks):
            h = block(h, tau[k])
            k += 1
            if j < len(self.downsample):
                skips.append(h)
                h = self.downsample[j](h)
        for j in reversed(range(len(self.up_blocks))):
            side = self.sides[j]
            h = torch.nn.functional.interpolate(h, scale_factor=2, mode="nearest")[:, :, :side, :side]
            h = torch.cat([self.upsample[j](h), skips[j]], 1)
            h = self.up_blocks[j](h, tau[k])
            k += 1
        return self.output(torch.relu(h)) + lam * s


def train_unet(T, seconds, repeats, batch=128, side=28):
    torch.manual_seed(0)
    b, c = paper_schedule(T)
    model = Unet(T, c, side)
    optimiser = make_optimiser(model, lr=2e-3)
    x0 = torch.bernoulli(torch.full((batch, 1, side, side), 0.2))

    def step():
        t = torch.randint(1, T + 1, (batch,))
        ct = c[t].float()[:, None, None, None]
        xt = torch.bernoulli(x0 * (1 - ct) + ct / 2)
        bt, cp = b[t].float()[:, None, None, None], c[t - 1].float()[:, None, None, None]
        q1 = posterior(x0, xt, bt, cp)
        a1, b1 = posterior(torch.ones_like(x0), xt, bt, cp), posterior(torch.zeros_like(x0), xt, bt, cp)
        g = torch.sigmoid(model(xt, t))
        f1 = (g * a1 + (1 - g) * b1).clamp(1e-30, 1 - 1e-7)
        (kl_bits(q1, f1=f1).sum() * T / batch).backward()
        optimiser_update(model, optimiser)

    for _ in range(3):
        step()  # warm-up
    values = []
    for _ in range(repeats):
        steps, start = 0, time.perf_counter()
        while True:
            step()
            steps += 1
            if time.perf_counter() - start >= seconds:
                break
        values.append(steps * batch / (time.perf_counter() - start))
    parameters = sum(p.numel() for p in model.parameters())
    return {"value": statistics.median(values), "unit": "images/s", "values": values, "parameters": parameters}


@torch.no_grad()
def sample_paper(T, n, repeats):
    torch.manual_seed(0)
    model = Paper(T)
    values = []
    model(torch.zeros(n, L), torch.tensor([T - 1]), 1)  # warm-up
    for _ in range(repeats):
        start = time.perf_counter()
        x = torch.bernoulli(torch.full((n, L), 0.5))
        for t in range(T, 0, -1):
            logits = model(x, torch.tensor([t - 1]), 1)[0]
            x = torch.bernoulli(torch.sigmoid(logits))
        values.append(n * T / (time.perf_counter() - start))
    return {"value": statistics.median(values), "unit": "sequence-steps/s", "values": values}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("case", choices=["train_paper_b2048", "train_paper_b64", "train_default", "train_unet_mnist", "sample_b1024"])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--T", type=int, default=T_DEFAULT)
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: every core)")
    args = parser.parse_args()
    threads = args.threads
    torch.set_num_threads(threads)
    if args.case == "train_paper_b2048":
        result = train_paper(2048, args.T, args.seconds, args.repeats)
    elif args.case == "train_paper_b64":
        result = train_paper(64, args.T, args.seconds, args.repeats)
    elif args.case == "train_default":
        result = train_default(args.T, args.seconds, args.repeats)
    elif args.case == "train_unet_mnist":
        result = train_unet(args.T, args.seconds, args.repeats)
    else:
        result = sample_paper(args.T, 1024, args.repeats)
    result.update(threads=threads, torch=torch.__version__, rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
