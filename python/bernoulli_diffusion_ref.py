"""A numpy reference for bernoulli-diffusion weights (docs/FORMAT.md), written from the spec.

It reads an export file (`bernoulli-diffusion export CKPT --out FILE`) or a training checkpoint
(model.safetensors, checkpoints/step-<n>.safetensors) and computes the reverse kernel

    f(x_t, t)[r, i] = p(x_{t-1}[r, i] = 1 | x_t[r], t[r])

for a batch, for every architecture (paper, mlp, circular). Only numpy and the standard library.

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


# --- the model ---------------------------------------------------------------------------------

def _linear(x, weight, bias=None):
    """y = x W^T + b with W [out, in] (PyTorch's nn.Linear)."""
    y = x @ weight.T
    return y if bias is None else y + bias


def _relu(x):
    return np.maximum(x, 0.0)


def _to_export_layout(architecture, name, values):
    """A training checkpoint tensor ([in, out] weights) in the export layout ([out, in])."""
    if name.endswith(".bias"):
        return values  # biases (readout.bias [T, L] too) are the same in both files
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
        forward = {"paper": self._paper, "mlp": self._mlp, "circular": self._circular}.get(self.architecture)
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
            weights[name] = _to_export_layout(config["architecture"], name, values)
        if config["architecture"] == "circular" and config.get("kernel", 0) == 0:
            config = dict(config, kernel=config["length"])
        return Model(config, weights)
    raise ValueError(f"{path}: not a bernoulli-diffusion file (metadata format {form!r})")
