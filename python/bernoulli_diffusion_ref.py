"""A numpy reference for bernoulli-diffusion weights (docs/FORMAT.md), written from the spec.

It reads an export file (`bernoulli-diffusion export CKPT --out FILE`) or a training checkpoint
(model.safetensors, checkpoints/step-<n>.safetensors) and computes the reverse kernel

    f(x_t, t)[r, i] = p(x_{t-1}[r, i] = 1 | x_t[r], t[r])

for a batch, for every architecture (paper, mlp, circular, unet). Only numpy and the standard library.

    model = load("model-export.safetensors")
    f = model.reverse_probabilities(xt, t)   # xt: rows x L of 0/1, t: rows steps in 1..T

Sampling one reverse step is then `x_prev = (rng.random(f.shape) < f)`, from x_T ~ B(1/2) down to
x_0. Weights are float32; everything is computed in float64.
"""

import json
import math
import struct

import numpy as np

EXPORT_FORMAT = "bernoulli-diffusion-export"
CHECKPOINT_FORMAT = "bernoulli-diffusion"
COSINE_OFFSET = 0.008
DTYPES = {"F32": "<f4", "F64": "<f8", "U32": "<u4", "U8": "u1"}


# --- safetensors -------------------------------------------------------------------------------

def read_safetensors(path):
    """(tensors: name -> numpy array, metadata: str -> str) of a safetensors file."""
    with open(path, "rb") as handle:
        data = handle.read()
    (header_length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_length].decode("utf-8"))
    metadata = header.pop("__metadata__", {})
    start = 8 + header_length
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        values = np.frombuffer(data[start + begin:start + end], dtype=DTYPES[entry["dtype"]])
        tensors[name] = values.reshape(entry["shape"])
    return tensors, metadata


# --- the forward process: schedule and posterior ----------------------------------------------

def schedule(kind, steps):
    """(b, c): b[t] the probability that step t replaces a bit by a fair coin, c[t] the cumulative
    rate with 1 - c_t = prod_{s<=t} (1 - b_s); index 0 is unused for b, c[0] = 0."""
    b = np.zeros(steps + 1)
    c = np.zeros(steps + 1)
    if kind == "paper":
        for t in range(1, steps + 1):
            b[t] = 1.0 / (steps - t + 1)  # b_t = 1/(T - t + 1)
            c[t] = t / steps  # c_t = t/T
        return b, c
    if kind == "linear":
        first, last = min(0.1 / steps, 1.0), min(20.0 / steps, 1.0)
        for t in range(1, steps):
            fraction = (t - 1) / (steps - 2) if steps > 2 else 0.0
            b[t] = min(first + (last - first) * fraction, 1.0)
    elif kind == "cosine":
        def kept(t):  # 1 - c_t = h(t)/h(0), h(t) = cos^2(pi/2 (t/T + s)/(1 + s))
            return math.cos(math.pi / 2 * (t / steps + COSINE_OFFSET) / (1 + COSINE_OFFSET)) ** 2
        for t in range(1, steps):
            b[t] = 1.0 - kept(t) / kept(t - 1)
    else:
        raise ValueError(f"unknown schedule {kind!r}")
    b[steps] = 1.0
    survived = 1.0
    for t in range(1, steps + 1):
        survived *= 1.0 - b[t]
        c[t] = 1.0 - survived
    return b, c


def posterior_one(x0, xt, b_t, c_prev):
    """q(x_{t-1} = 1 | x_t, x0) for bits x0, x_t (Bayes' rule; exactly x0 at t = 1)."""
    a1 = x0 * (1 - c_prev) + c_prev / 2  # q(x_{t-1} = 1 | x0)
    a0 = (1 - x0) * (1 - c_prev) + c_prev / 2
    l1 = xt * (1 - b_t / 2) + (1 - xt) * (b_t / 2)  # q(x_t | x_{t-1} = 1)
    l0 = xt * (b_t / 2) + (1 - xt) * (1 - b_t / 2)  # q(x_t | x_{t-1} = 0)
    return a1 * l1 / (a1 * l1 + a0 * l0)


def sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


# --- the networks' inputs of t -----------------------------------------------------------------

def time_embedding(t, steps, width):
    """e(t) (rows x E): sin(tau w_j) for j < E/2, then cos(tau w_j), tau = 1000 t/T,
    w_j = 10000^(-j/(E/2)); rounded to float32 as the model holds it."""
    half = width // 2
    tau = 1000.0 * np.asarray(t, dtype=np.float64) / steps
    omega = np.exp(-math.log(10000.0) * np.arange(half) / half)
    out = np.zeros((len(tau), width))
    out[:, :half] = np.sin(tau[:, None] * omega[None, :])
    out[:, half:2 * half] = np.cos(tau[:, None] * omega[None, :])
    return out.astype(np.float32).astype(np.float64)


def evidence(t, parameterisation, b, c):
    """lambda_t = log((1 - r/2)/(r/2)), r = c_t (x0) or b_t (direct), as float32: the log-odds that a
    bit of x_t is still the bit it was (at x0, or at x_{t-1})."""
    rate = np.array([(c if parameterisation == "x0" else b)[k] for k in t])
    rate = np.maximum(rate, 1e-12)
    return np.log((1 - rate / 2) / (rate / 2)).astype(np.float32).astype(np.float64)


# --- the U-Net's geometry ----------------------------------------------------------------------

def unet_data_shape(config):
    """The data's shape as the U-Net sees it: [L] (1-D) or [H, W] (2-D, row-major)."""
    shape = config.get("shape")
    return [config["length"]] if shape is None or len(shape) < 2 else list(shape)


def unet_default_levels(grid):
    """levels = 0 means: 1 + the halvings (rounding up) until the longest side is at most 4."""
    side, levels = max(grid), 1
    while side > 4:
        side, levels = (side + 1) // 2, levels + 1
    return levels


def _axis_sources(in_len, out_len, taps, stride=1, dilation=1, circular=False, upsample=False):
    """For each output index o and tap d, the input index it reads: q = o*stride + (d - taps//2)*dilation
    (on the upsampled grid of out_len positions when upsampling, which then reads q//2), wrapped
    mod the grid when circular; in_len (a zero row) when it falls outside a zero-padded grid."""
    grid = out_len if upsample else in_len
    sources = np.full((out_len, taps), in_len, dtype=np.int64)
    for o in range(out_len):
        for d in range(taps):
            q = o * stride + (d - taps // 2) * dilation
            if circular:
                q %= grid
            elif q < 0 or q >= grid:
                continue
            sources[o, d] = q // 2 if upsample else q
    return sources


def _grid_conv(h, weight, bias, rows_src, cols_src):
    """y[r, oy, ox] = bias + sum_{dy, dx} W[:, :, dy, dx] h[r, rows_src[oy, dy], cols_src[ox, dx]]
    (a cross-correlation as PyTorch's ConvNd; index = the side length reads zero). h is
    [rows, H, W, C_in] (channel-last), weight [out, in, kh, kw]."""
    padded = np.pad(h, ((0, 0), (0, 1), (0, 1), (0, 0)))
    out = np.zeros((h.shape[0], rows_src.shape[0], cols_src.shape[0], weight.shape[0]))
    for dy in range(weight.shape[2]):
        for dx in range(weight.shape[3]):
            gathered = padded[:, rows_src[:, dy]][:, :, cols_src[:, dx]]
            out += gathered @ weight[:, :, dy, dx].T
    return out if bias is None else out + bias


# --- the model ---------------------------------------------------------------------------------

def _linear(x, weight, bias=None):
    """y = x W^T + b with W [out, in] (PyTorch's nn.Linear)."""
    y = x @ weight.T
    return y if bias is None else y + bias


def _relu(x):
    return np.maximum(x, 0.0)


def _to_export_layout(config, name, values):
    """A training checkpoint tensor ([in, out] weights) in the export layout ([out, in])."""
    architecture = config["architecture"]
    if name.endswith(".bias"):
        return values  # biases (readout.bias [T, L] too) are the same in both files
    if architecture == "unet" and not name.startswith("time."):
        shape = unet_data_shape(config)
        if name == "position":
            return values.T.reshape(values.shape[1], *shape)  # [P, C] -> [C, L] or [C, H, W]
        if values.ndim == 2:
            return values.T.reshape(*values.T.shape, *(1 for _ in shape))  # 1x1 conv [in, out] -> [out, in, 1(, 1)]
        kernel = [3 if side > 1 else 1 for side in shape]
        return np.transpose(values, (2, 1, 0)).reshape(values.shape[2], values.shape[1], *kernel)  # [K, in, out] -> [out, in, k...]
    if architecture == "paper" and name == "readout.weight":
        return np.transpose(values, (0, 2, 1))  # [T, H, L] -> [T, L, H]
    if architecture == "circular" and name.endswith(".conv.weight"):
        return values.T[:, None, :]  # [K, C] -> [C, 1, K]
    return values.T  # [in, out] -> [out, in]


class Model:
    """A network and its reverse kernel, from an export file or a training checkpoint."""

    def __init__(self, config, weights):
        self.config = config
        self.w = {name: np.asarray(values, dtype=np.float64) for name, values in weights.items()}
        self.length = config["length"]
        self.steps = config["T"]
        self.architecture = config["architecture"]
        self.parameterisation = config["parameterisation"]
        self.b, self.c = schedule(config["schedule"], self.steps)

    def logits(self, xt, t):
        """The network's logit z[r, i] (rows x L) for bits xt (rows x L) at steps t (rows)."""
        xt = np.asarray(xt, dtype=np.float64)
        t = np.asarray(t, dtype=np.int64)
        if xt.ndim != 2 or xt.shape[1] != self.length or len(t) != xt.shape[0]:
            raise ValueError(f"xt must be rows x {self.length} and t hold one step per row")
        if np.any(t < 1) or np.any(t > self.steps):
            raise ValueError(f"t must be in 1..{self.steps}")
        forward = {"paper": self._paper, "mlp": self._mlp, "circular": self._circular, "unet": self._unet}.get(self.architecture)
        if forward is None:
            raise NotImplementedError(f"architecture {self.architecture!r} (see docs/FORMAT.md)")
        return forward(xt, t)

    def _paper(self, xt, t):
        w = self.w
        h = xt  # the bit itself, 0 or 1
        for i in range(self.config["layers"]):
            h = _relu(_linear(h, w[f"shared.{i}.weight"], w[f"shared.{i}.bias"]))
        readout = w["readout.weight"][t - 1]  # rows x L x H: the readout of each row's t
        return np.einsum("rlh,rh->rl", readout, h) + w["readout.bias"][t - 1]

    def _mlp(self, xt, t):
        w = self.w
        s = 2 * xt - 1
        lam = evidence(t, self.parameterisation, self.b, self.c)[:, None]
        e = time_embedding(t, self.steps, self.config["time_embedding"])
        u = np.concatenate([s, lam * s], axis=1)  # [s, lambda_t s]
        h = _linear(u, w["input.weight"], w["input.bias"]) + _linear(e, w["time.weight"])
        for i in range(self.config["layers"]):
            a = _relu(_linear(h, w[f"blocks.{i}.fc1.weight"], w[f"blocks.{i}.fc1.bias"]))
            h = h + _linear(a, w[f"blocks.{i}.fc2.weight"], w[f"blocks.{i}.fc2.bias"])
        return _linear(h, w["output.weight"], w["output.bias"]) + lam * s

    def _circular(self, xt, t):
        w = self.w
        channels, layers = self.config["hidden"], self.config["layers"]
        s = (2 * xt - 1)[:, :, None]  # rows x L x 1
        lam = evidence(t, self.parameterisation, self.b, self.c)[:, None, None]
        e = time_embedding(t, self.steps, self.config["time_embedding"])
        tau = _linear(e, w["time.weight"]).reshape(len(t), layers + 1, channels)  # chunk k: tau_k
        features = np.concatenate([s, lam * s], axis=2)  # rows x L x 2
        h = _linear(features, w["input.weight"], w["input.bias"]) + tau[:, None, 0, :]
        for i in range(layers):
            taps = w[f"blocks.{i}.conv.weight"][:, 0, :]  # C x K
            kernel = taps.shape[1]
            # m[p] = sum_d taps[:, d] h[(p + d - K//2) mod L]: circular cross-correlation
            m = np.zeros_like(h)
            for d in range(kernel):
                m += taps[:, d] * np.roll(h, kernel // 2 - d, axis=1)
            m += w[f"blocks.{i}.conv.bias"] + tau[:, None, i + 1, :]
            a = _relu(_linear(m, w[f"blocks.{i}.fc1.weight"], w[f"blocks.{i}.fc1.bias"]))
            h = h + _linear(a, w[f"blocks.{i}.fc2.weight"], w[f"blocks.{i}.fc2.bias"])
        return (_linear(h, w["output.weight"], w["output.bias"]) + lam * s)[:, :, 0]

    def _unet(self, xt, t):
        w, cfg = self.w, self.config
        shape = unet_data_shape(cfg)
        grid = shape if len(shape) == 2 else [1, shape[0]]  # 1-D is a 1 x L grid
        kernel = [3 if side > 1 else 1 for side in grid]
        channels, blocks = cfg["channels"], cfg["blocks"]
        circular = cfg["padding"] == "circular"
        levels = cfg["levels"] or unet_default_levels(grid)
        position = cfg.get("position_embedding")
        position = (not circular) if position is None else position
        rows = len(t)

        def weight4(name):  # any conv weight as [out, in, kh, kw]
            values = w[name]
            taps = values.reshape(values.shape[0], values.shape[1], -1).shape[2]
            return values.reshape(values.shape[0], values.shape[1], *(kernel if taps > 1 else (1, 1)))

        # level j's grid: halved j times (ceil) with zero padding; the full grid with circular
        grids = [grid]
        for _ in range(levels - 1):
            grids.append(grids[-1] if circular else [(side + 1) // 2 for side in grids[-1]])

        def same(j):  # the per-axis sources of a same-size 3-tap convolution at level j
            dilation = 2 ** j if circular else 1
            return [_axis_sources(grids[j][a], grids[j][a], kernel[a], dilation=dilation, circular=circular) for a in (0, 1)]

        def conv(h, name, sources, bias=True):
            return _grid_conv(h, weight4(f"{name}.weight"), w[f"{name}.bias"] if bias else None, *sources)

        s = (2 * xt - 1).reshape(rows, grid[0], grid[1])  # bit i at (i // W, i % W)
        lam = evidence(t, self.parameterisation, self.b, self.c)
        e = time_embedding(t, self.steps, cfg["time_embedding"])
        hidden = _relu(_linear(e, w["time.fc1.weight"], w["time.fc1.bias"]))
        activation = _relu(_linear(hidden, w["time.fc2.weight"], w["time.fc2.bias"]))
        # tau: one chunk per block, in stage order, of that block's channel count (C_j at level j)
        tau = _linear(activation, w["time.proj.weight"], w["time.proj.bias"])
        features = np.stack([s, lam[:, None, None] * s], axis=3)  # channel 0: s, channel 1: lambda s
        h = conv(features, "stem", same(0))
        if position:
            h = h + w["position"].reshape(channels, grid[0], grid[1]).transpose(1, 2, 0)
        chunk = 0

        def block(h, name, j):
            nonlocal chunk
            sources = same(j)
            width = w[f"{name}.conv1.bias"].shape[0]
            m = conv(_relu(h), f"{name}.conv1", sources) + tau[:, None, None, chunk : chunk + width]
            chunk += width
            y = conv(_relu(m), f"{name}.conv2", sources)
            identity = (np.arange(grids[j][0])[:, None], np.arange(grids[j][1])[:, None])
            residual = h if f"{name}.skip.weight" not in w else conv(h, f"{name}.skip", identity, bias=False)
            return y + residual

        skips = []
        for j in range(levels):
            for b in range(blocks):
                h = block(h, f"down.{j}.blocks.{b}", j)
            if j + 1 < levels:
                skips.append(h)
                if circular:  # a trous: the strided convolution becomes one dilated by 2^j
                    down = same(j)
                else:  # stride 2, zero padding 1: output o reads 2o - 1, 2o, 2o + 1
                    down = [_axis_sources(grids[j][a], grids[j + 1][a], kernel[a], stride=2) for a in (0, 1)]
                h = conv(h, f"down.{j}.downsample", down)
        for j in reversed(range(levels - 1)):
            if circular:
                up = same(j)
            else:  # nearest upsampling to level j's grid (cropping odd sides), then a 3-tap convolution
                up = [_axis_sources(grids[j + 1][a], grids[j][a], kernel[a], upsample=True) for a in (0, 1)]
            h = conv(h, f"up.{j}.upsample", up)
            h = np.concatenate([h, skips[j]], axis=3)  # [h, skip_j]: 2C_j channels
            for b in range(blocks):
                h = block(h, f"up.{j}.blocks.{b}", j)
        w_out = w["output.weight"].reshape(1, channels)
        z = _linear(_relu(h), w_out, w["output.bias"])[..., 0] + lam[:, None, None] * s
        return z.reshape(rows, -1)

    def reverse_probabilities(self, xt, t):
        """f(x_t, t) = p(x_{t-1} = 1 | x_t) per bit (rows x L, float64)."""
        xt = np.asarray(xt)
        t = np.asarray(t, dtype=np.int64)
        g = sigmoid(self.logits(xt, t))
        if self.parameterisation == "direct":
            return g  # the network's sigmoid is f itself
        # x0: g = P(x0 = 1 | x_t); f = g q(x_{t-1} = 1 | x_t, x0 = 1) + (1 - g) q(x_{t-1} = 1 | x_t, x0 = 0)
        b_t, c_prev = self.b[t][:, None], self.c[t - 1][:, None]
        post1 = posterior_one(1.0, xt, b_t, c_prev)
        post0 = posterior_one(0.0, xt, b_t, c_prev)
        return g * post1 + (1 - g) * post0


def load(path, use_ema=None):
    """A Model from an export file or a training checkpoint. A checkpoint gives the EMA weights when
    its model has an EMA (what it samples with); use_ema=False takes the current weights instead."""
    tensors, metadata = read_safetensors(path)
    form = metadata.get("format")
    if form == EXPORT_FORMAT:
        if metadata.get("format_version") != "1":
            raise ValueError(f"{path}: export format version {metadata.get('format_version')} (this reads 1)")
        config = json.loads(metadata["model_config"])
        return Model(config, tensors)
    if form == CHECKPOINT_FORMAT:
        state = json.loads(metadata["model_state"])
        config = state["model"]
        if use_ema is None:
            use_ema = state["training"]["ema_decay"] > 0
        names = [n for n in tensors if not n.startswith(("optimiser.", "ema."))]
        weights = {}
        for name in names:
            values = tensors.get(f"ema.{name}", tensors[name]) if use_ema else tensors[name]
            weights[name] = _to_export_layout(config, name, values)
        if config["architecture"] == "circular" and config.get("kernel", 0) == 0:
            config = dict(config, kernel=config["length"])
        return Model(config, weights)
    raise ValueError(f"{path}: not a bernoulli-diffusion file (metadata format {form!r})")
