"""Checkpoint format 2 (fers.spatial.frozen): the Spa-FEN's random, frozen ResNet-34 kept as its seed plus 2 bits
per weight, drawn again bit for bit at load, on either of PyTorch's CPU paths; anything else refused."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from fers.checkpoint import load_model, read_checkpoint, save_checkpoint
from fers.errors import ModelError
from fers.spatial import frozen
from fers.spatial.model import SpaFEN
from fers.spectral.model import SpeFEN


@pytest.fixture(scope="module")
def packed():
    """(state, rest, record): a Spa-FEN state whose backbone is the random draw of seed 3 (rounded to float16 as
    scripts/train_default.py's compact does) and whose other parts are "trained", and its format-2 split."""
    torch.manual_seed(3)
    spa = SpaFEN(6)
    state = {k: (v.half() if k in frozen.frozen_keys(spa.state_dict()) else v) for k, v in spa.state_dict().items()}
    state["compression.conv.weight"] = state["compression.conv.weight"] + 0.25
    rest, record = frozen.pack(state, 6, 3)
    return state, rest, record


def test_the_seed_and_residues_give_back_every_float16_weight(packed):
    state, rest, record = packed
    assert not any(k in rest for k in record["keys"]) and len(record["keys"]) == 29  # stem + layer1-3 convs
    back = frozen.unpack(rest, record, 6, "x.pt")
    for k, v in state.items():
        assert torch.equal(back[k], v), k
    # the record is 2 bits per weight: 1/8 of the float16 weights it replaces
    n = sum(state[k].numel() for k in record["keys"])
    assert record["residue"].numel() == (n + 3) // 4


def test_a_draw_one_float16_step_off_is_put_back_and_two_steps_are_refused(packed, monkeypatch):
    state, rest, record = packed
    true_draw = frozen._draw

    def off_by(steps):
        def draw(bands, seed):
            d = true_draw(bands, seed)
            for k in record["keys"]:
                codes = frozen._order(frozen._codes(d[k].half())).copy()
                rng = np.random.default_rng(len(k))
                hit = rng.random(codes.shape) < 0.01  # 1 % of the weights, both directions
                codes[hit] += (rng.integers(0, 2, int(hit.sum())) * 2 - 1).astype(np.int16) * steps
                d[k] = torch.from_numpy(frozen._order(codes)).view(torch.float16).float()
            return d
        return draw

    monkeypatch.setattr(frozen, "_draw", off_by(1))  # what the plain (non-AVX2) CPU path of normal_ does
    back = frozen.unpack(rest, record, 6, "x.pt")
    assert all(torch.equal(back[k], state[k]) for k in record["keys"])
    monkeypatch.setattr(frozen, "_draw", off_by(2))
    with pytest.raises(ModelError, match=r"x\.pt: this PyTorch .* draws the model's frozen random backbone"):
        frozen.unpack(rest, record, 6, "x.pt")


def test_weights_that_are_not_the_seeds_draw_are_not_stored_as_it(packed):
    state, _, _ = packed
    with pytest.raises(ModelError, match="is not the random draw of seed 4"):
        frozen.pack(state, 6, 4)


def test_a_format_2_file_loads_the_network_of_the_full_file_and_keeps_the_random_state(packed, tmp_path):
    state, rest, record = packed
    spe, meta = SpeFEN(6).state_dict(), {"bands": 6, "adapt_bn": True}
    full = save_checkpoint(str(tmp_path / "full.pt"), "fers", meta, spe_fen=spe, spa_fen=state)
    small = save_checkpoint(str(tmp_path / "small.pt"), "fers", meta, frozen_backbone=record, spe_fen=spe,
                            spa_fen=rest)
    assert read_checkpoint(full)["format_version"] == 1 and read_checkpoint(small)["format_version"] == 2
    assert os.path.getsize(small) < os.path.getsize(full) / 2
    a, b = load_model(full), load_model(small)  # both weights_only loads
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    frozen.unpack(rest, record, 6, "small.pt")  # the draw runs on a forked generator
    assert torch.equal(torch.rand(3), expected)
    sa, sb = a.spa.state_dict(), b.spa.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_the_bundled_models_are_rebuilt_exactly_on_the_plain_cpu_path_too():
    # ATEN_CPU_CAPABILITY=default: PyTorch's non-vectorised kernels, as on a CPU without AVX2 (e.g. ARM): its
    # normal_ rounds ~4,800 of the 8.2 M float16 weights one step off; the residues put them back, or the
    # SHA-256 of the rebuilt weights would not match and load_model would refuse the model
    code = ("import torch\nfrom fers.checkpoint import load_model\n"
            "print(torch.backends.cpu.get_cpu_capability())\n"
            "for b in (100, 200):\n"
            "    print(load_model(f'fers-aviris-{b}').spa.backbone.layer3[5].conv2.weight.double().sum().item())\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, ATEN_CPU_CAPABILITY="default"))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    # "NO AVX": a torch built without CPU dispatch (Debian's) has only the plain path, which the line below checks
    assert lines[0] in ("DEFAULT", "NO AVX", "NO"), lines[0]
    m = load_model("fers-aviris-100")  # this process: the vectorised path where the CPU has it
    assert float(lines[1]) == m.spa.backbone.layer3[5].conv2.weight.double().sum().item()
