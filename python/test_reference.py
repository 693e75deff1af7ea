"""The numpy reference (bernoulli_diffusion_ref.py, written from docs/FORMAT.md) against the wasm
core: for models of every architecture trained a few steps by the built package
(python/make_fixtures.mjs), the reference's reverse-kernel probabilities from the export file, and
from the training checkpoint, equal the core's within 1e-5.

Run: python3 python/test_reference.py   (or pytest python/test_reference.py); needs numpy, node and
the built package (scripts/setup.sh). Ends with "N passed, M failed".
"""

import glob
import json
import os
import subprocess
import sys
import tempfile
import traceback

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import bernoulli_diffusion_ref as ref  # noqa: E402

TOLERANCE = 1e-5
_FIXTURES = None


def fixtures():
    """The fixture folder (made once per run by python/make_fixtures.mjs)."""
    global _FIXTURES
    if _FIXTURES is None:
        folder = tempfile.mkdtemp(prefix="bd-ref-")
        made = subprocess.run(["node", os.path.join(HERE, "make_fixtures.mjs"), folder], cwd=ROOT, capture_output=True, text=True)
        _FIXTURES = folder if made.returncode == 0 else RuntimeError(f"python/make_fixtures.mjs failed (is the package built? scripts/setup.sh):\n{made.stderr}")
    if isinstance(_FIXTURES, Exception):
        raise _FIXTURES
    return _FIXTURES


def cases():
    paths = sorted(glob.glob(os.path.join(fixtures(), "*.json")))
    assert len(paths) >= 12, f"expected the fixture cases, found {len(paths)}"
    for path in paths:
        with open(path) as handle:
            case = json.load(handle)
        rows, length = case["rows"], case["length"]
        xt = np.array(case["xt"], dtype=np.uint8).reshape(rows, length)
        t = np.array(case["t"], dtype=np.int64)
        f = np.array(case["f"], dtype=np.float64).reshape(rows, length)
        yield case, xt, t, f, os.path.join(fixtures(), case["name"])


def test_export_files_give_the_cores_reverse_kernel():
    architectures = set()
    for case, xt, t, f, stem in cases():
        model = ref.load(stem + ".export.safetensors")
        architectures.add(model.architecture)
        mine = model.reverse_probabilities(xt, t)
        error = np.max(np.abs(mine - f))
        assert error <= TOLERANCE, f"{case['name']}: max |f_ref - f_wasm| = {error:.3g}"
        # not trivially close: the kernels vary across bits and steps
        assert np.ptp(f) > 0.1, f"{case['name']}: f hardly varies ({np.ptp(f):.3g})"
    assert architectures == {"paper", "mlp", "circular", "unet"}, architectures


def test_training_checkpoints_give_the_same_as_their_export():
    for case, xt, t, f, stem in cases():
        exported = ref.load(stem + ".export.safetensors").reverse_probabilities(xt, t)
        checkpoint = ref.load(stem + ".checkpoint.safetensors").reverse_probabilities(xt, t)
        assert np.max(np.abs(exported - checkpoint)) <= 1e-12, case["name"]
        assert np.max(np.abs(checkpoint - f)) <= TOLERANCE, case["name"]


def test_the_export_holds_the_ema_weights_and_says_so():
    checked = 0
    for case, xt, t, f, stem in cases():
        tensors, metadata = ref.read_safetensors(stem + ".export.safetensors")
        assert metadata["format"] == "bernoulli-diffusion-export" and metadata["format_version"] == "1"
        assert metadata["weights"] == ("ema" if case["ema"] else "weights"), case["name"]
        assert not any(name.startswith(("ema.", "optimiser.")) for name in tensors), case["name"]
        assert all(v.dtype == np.float32 for v in tensors.values())
        if case["ema"]:
            # the current (not EMA) weights give a different kernel: the test above would notice
            # an export of the wrong set
            current = ref.load(stem + ".checkpoint.safetensors", use_ema=False).reverse_probabilities(xt, t)
            assert np.max(np.abs(current - f)) > 100 * TOLERANCE, case["name"]
            checked += 1
    assert checked >= 6


def test_export_shapes_are_pytorch_layout():
    seen = set()
    for case, xt, t, f, stem in cases():
        tensors, metadata = ref.read_safetensors(stem + ".export.safetensors")
        length, steps, hidden = int(metadata["length"]), int(metadata["T"]), int(metadata["hidden"])
        embedding, kernel = int(metadata["time_embedding"]), int(metadata["kernel"])
        layers = int(metadata["layers"])
        arch = metadata["architecture"]
        seen.add(arch)
        if arch == "paper":
            assert tensors["shared.0.weight"].shape == (hidden, length)
            assert tensors["readout.weight"].shape == (steps, length, hidden)
            assert tensors["readout.bias"].shape == (steps, length)
        elif arch == "mlp":
            assert tensors["input.weight"].shape == (hidden, 2 * length)
            assert tensors["time.weight"].shape == (hidden, embedding)
            assert tensors["output.weight"].shape == (length, hidden)
        elif arch == "unet":
            shape = json.loads(metadata["shape"])
            channels, levels, blocks = int(metadata["channels"]), int(metadata["levels"]), int(metadata["blocks"])
            cap = int(metadata.get("max_channels", "0"))
            # C_j = min(C 2^j, cap), or C at every level when the cap is 0
            widths = [channels if cap == 0 else min(channels * 2**j, max(cap, channels)) for j in range(levels)]
            taps = [3 if side > 1 else 1 for side in shape]
            ones = [1] * len(shape)
            assert len(shape) in (1, 2) and int(np.prod(shape)) == length and kernel == 0
            assert tensors["stem.weight"].shape == (channels, 2, *taps)
            assert tensors["time.fc1.weight"].shape == (2 * channels, embedding)
            if len(set(widths)) > 1:
                seen.add("unet with growing channels")
            tau = blocks * (sum(widths) + sum(widths[:-1]))
            assert tensors["time.proj.weight"].shape == (tau, 2 * channels)
            for j, width in enumerate(widths):
                assert tensors[f"down.{j}.blocks.0.conv2.weight"].shape == (width, width, *taps)
                if j + 1 < levels:
                    assert tensors[f"down.{j}.downsample.weight"].shape == (widths[j + 1], width, *taps)
                    assert tensors[f"up.{j}.upsample.weight"].shape == (width, widths[j + 1], *taps)
            assert tensors["down.0.blocks.0.conv1.weight"].shape == (channels, channels, *taps)
            assert tensors["up.0.blocks.0.conv1.weight"].shape == (channels, 2 * channels, *taps)
            assert tensors["up.0.blocks.0.skip.weight"].shape == (channels, 2 * channels, *ones)
            assert tensors["output.weight"].shape == (1, channels, *ones)
            assert (metadata["position_embedding"] == "true") == ("position" in tensors)
            if "position" in tensors:
                assert tensors["position"].shape == (channels, *shape)
            # every level has its blocks, every level but the last a downsample and an upsample
            assert sum(name.endswith("conv1.weight") for name in tensors) == (2 * levels - 1) * blocks
            assert {name.split(".")[1] for name in tensors if name.startswith("down.")} == {str(j) for j in range(levels)}
            assert sum(name.endswith("sample.weight") for name in tensors) == 2 * (levels - 1)
        else:
            assert kernel == (json.loads(metadata["model_config"])["kernel"] or length)
            assert tensors["input.weight"].shape == (hidden, 2)
            assert tensors["time.weight"].shape == ((layers + 1) * hidden, embedding)
            assert tensors["blocks.0.conv.weight"].shape == (hidden, 1, kernel)
            assert tensors["output.weight"].shape == (1, hidden)
    assert seen == {"paper", "mlp", "circular", "unet", "unet with growing channels"}


def test_pythons_safetensors_reads_the_export_as_our_parser_does():
    from safetensors.numpy import load_file  # installed by scripts/setup.sh

    for case, xt, t, f, stem in cases():
        ours, _ = ref.read_safetensors(stem + ".export.safetensors")
        theirs = load_file(stem + ".export.safetensors")
        assert sorted(theirs) == sorted(ours), case["name"]
        for name, values in theirs.items():
            assert values.dtype == np.float32 and values.shape == ours[name].shape and np.array_equal(values, ours[name]), (case["name"], name)


def test_schedules_match_the_shared_vectors():
    with open(os.path.join(ROOT, "tests", "vectors", "schedule.json")) as handle:
        vectors = json.load(handle)
    for entry in vectors["schedules"]:
        b, c = ref.schedule(entry["kind"], entry["T"])
        for k, step in enumerate(entry["t"]):
            assert abs(b[step] - entry["b"][k]) <= 1e-12 and abs(c[step] - entry["c"][k]) <= 1e-12, (entry["kind"], entry["T"], step)


def test_the_reverse_kernel_of_an_uninformed_x0_prediction_is_bayes():
    # g = P(x0 = 1 | x_t bit) of x0 ~ B(1/2) gives f = P(x_{t-1} = 1 | x_t) = 1 - b_t/2 for x_t = 1
    config = {"length": 3, "T": 6, "schedule": "cosine", "architecture": "mlp", "parameterisation": "x0", "hidden": 2, "layers": 1, "time_embedding": 4, "kernel": 0}
    zeros = {"input.weight": np.zeros((2, 6)), "input.bias": np.zeros(2), "time.weight": np.zeros((2, 4)), "blocks.0.fc1.weight": np.zeros((2, 2)), "blocks.0.fc1.bias": np.zeros(2), "blocks.0.fc2.weight": np.zeros((2, 2)), "blocks.0.fc2.bias": np.zeros(2), "output.weight": np.zeros((3, 2)), "output.bias": np.zeros(3)}
    model = ref.Model(config, zeros)
    xt = np.array([[1, 0, 1]] * 6)
    t = np.arange(1, 7)
    f = model.reverse_probabilities(xt, t)
    b = model.b[t][:, None]
    want = np.where(xt == 1, 1 - b / 2, b / 2)
    assert np.max(np.abs(f - want)) < 1e-6


def test_unet_default_levels_follow_the_rule():
    # the examples of crate/src/network/unet.rs
    for grid, levels in [([1, 1], 1), ([1, 4], 1), ([1, 5], 2), ([1, 12], 3), ([1, 20], 4), ([1, 64], 5), ([28, 28], 4)]:
        assert ref.unet_default_levels(grid) == levels, grid


def test_unet_grid_convolution_index_maps():
    # stride 2, zero padding: output o reads 2o - 1, 2o, 2o + 1 (5 -> 3; index 5 is the zero row)
    assert ref._axis_sources(5, 3, 3, stride=2).tolist() == [[5, 0, 1], [1, 2, 3], [3, 4, 5]]
    # nearest upsampling 3 -> 5 (crop), then 3 taps with zero padding: fine q reads coarse q // 2
    assert ref._axis_sources(3, 5, 3, upsample=True).tolist() == [[3, 0, 0], [0, 0, 1], [0, 1, 1], [1, 1, 2], [1, 2, 3]]
    # circular, dilation 2 on 5 positions
    assert ref._axis_sources(5, 5, 3, dilation=2, circular=True).tolist() == [[3, 0, 2], [4, 1, 3], [0, 2, 4], [1, 3, 0], [2, 4, 1]]


def test_untrained_unet_is_the_independent_bit_posterior_and_circular_is_shift_equivariant():
    rng = np.random.default_rng(3)
    base = {"length": 12, "T": 6, "schedule": "paper", "architecture": "unet", "parameterisation": "direct", "hidden": 8, "layers": 1, "time_embedding": 4, "kernel": 0, "shape": [3, 4], "channels": 3, "levels": 2, "blocks": 1, "padding": "circular", "position_embedding": None}
    names = {"stem.weight": (3, 2, 3, 3), "stem.bias": (3,), "time.fc1.weight": (6, 4), "time.fc1.bias": (6,), "time.fc2.weight": (6, 6), "time.fc2.bias": (6,), "time.proj.weight": (9, 6), "time.proj.bias": (9,), "output.weight": (1, 3, 1, 1), "output.bias": (1,)}
    for stage in ["down.0.blocks.0", "down.1.blocks.0", "up.0.blocks.0"]:
        c_in = 6 if stage.startswith("up") else 3
        names.update({f"{stage}.conv1.weight": (3, c_in, 3, 3), f"{stage}.conv1.bias": (3,), f"{stage}.conv2.weight": (3, 3, 3, 3), f"{stage}.conv2.bias": (3,)})
        if c_in != 3:
            names[f"{stage}.skip.weight"] = (3, c_in, 1, 1)
    names.update({"down.0.downsample.weight": (3, 3, 3, 3), "down.0.downsample.bias": (3,), "up.0.upsample.weight": (3, 3, 3, 3), "up.0.upsample.bias": (3,)})
    weights = {name: rng.normal(size=shape) for name, shape in names.items()}
    xt = rng.integers(0, 2, (4, 12))
    t = np.array([1, 2, 4, 6])
    silent = ref.Model(base, dict(weights, **{"output.weight": np.zeros((1, 3, 1, 1)), "output.bias": np.zeros(1)}))
    lam = ref.evidence(t, "direct", silent.b, silent.c)[:, None]
    assert np.max(np.abs(silent.logits(xt, t) - lam * (2 * xt - 1))) < 1e-12
    model = ref.Model(base, weights)
    z = model.logits(xt, t).reshape(4, 3, 4)
    for dy in range(3):
        for dx in range(4):
            shifted = np.roll(xt.reshape(4, 3, 4), (dy, dx), axis=(1, 2)).reshape(4, 12)
            assert np.max(np.abs(model.logits(shifted, t).reshape(4, 3, 4) - np.roll(z, (dy, dx), axis=(1, 2)))) < 1e-9
    zero = ref.Model(dict(base, padding="zero", position_embedding=False), weights)
    assert np.max(np.abs(zero.logits(xt, t) - model.logits(xt, t))) > 1e-3  # the padding matters


def main():
    tests = [(name, fn) for name, fn in sorted(globals().items()) if name.startswith("test_") and callable(fn)]
    passed = failed = 0
    for name, fn in tests:
        try:
            fn()
            passed += 1
            print(f"ok   {name}")
        except Exception:  # noqa: BLE001 - report every failing test, then the count
            failed += 1
            print(f"FAIL {name}")
            traceback.print_exc()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
