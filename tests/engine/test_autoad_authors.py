"""Our Auto-AD network IS the authors': their models/skip.py (github.com/RSIDEA-WHU2020/Auto-AD, read out of a
git mirror at test time, never committed) built as their AD_main_loop.py builds it, given our network's weights
entry by entry, gives our output on an odd-sized input (DIP's Concat crop) in training mode (batch statistics,
as the loop runs it) and after, in eval mode. Skipped only when the mirror is absent (AUTOAD_REPO or
../.mirror/RSIDEA-WHU2020+Auto-AD/repo beside the checkout); bench/autoad_reference.py runs their whole loop."""
import importlib.util
import os
import subprocess
import sys

import pytest
import torch

from conftest import REPO
from fers.detect.autoad import SkipNet

MIRROR = os.path.abspath(os.environ.get("AUTOAD_REPO") or os.path.join(REPO, "..", ".mirror",
                                                                        "RSIDEA-WHU2020+Auto-AD", "repo"))


def their_skip(tmp_path, monkeypatch):
    """Their ``models.skip.skip`` from the mirror's HEAD (models/ only: skip.py, common.py, downsampler.py)."""
    have = subprocess.run(["git", "--git-dir", MIRROR, "cat-file", "-e", "HEAD:models/skip.py"], capture_output=True)
    if not os.path.isdir(MIRROR) or have.returncode != 0:
        pytest.skip(f"the Auto-AD authors' code is not mirrored at {MIRROR} (fetch github:RSIDEA-WHU2020/Auto-AD)")
    pkg = tmp_path / "autoad_models"
    pkg.mkdir()
    for f in ("skip.py", "common.py", "downsampler.py"):  # their __init__ also pulls resnet/unet, unused here
        text = subprocess.run(["git", "--git-dir", MIRROR, "show", f"HEAD:models/{f}"], capture_output=True,
                              text=True, check=True).stdout
        (pkg / f).write_text(text)
    (pkg / "__init__.py").write_text("")
    # their common.py gives every torch Module an ``add`` method; undone after the test
    monkeypatch.setattr(torch.nn.Module, "add", None, raising=False)
    spec = importlib.util.spec_from_file_location("autoad_models", pkg / "__init__.py",
                                                  submodule_search_locations=[str(pkg)])
    sys.modules["autoad_models"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sys.modules["autoad_models"])
    try:
        return importlib.import_module("autoad_models.skip").skip
    finally:
        for name in [m for m in sys.modules if m == "autoad_models" or m.startswith("autoad_models.")]:
            del sys.modules[name]


def test_our_skip_network_is_the_authors(tmp_path, monkeypatch):
    skip = their_skip(tmp_path, monkeypatch)
    bands, c, layers = 9, 16, 5  # their AD_main_loop.py: channellss = 128 (the architecture at any width)
    torch.manual_seed(0)
    theirs = skip(bands, bands, num_channels_down=[c] * layers, num_channels_up=[c] * layers,
                  num_channels_skip=[c] * layers, filter_size_up=3, filter_size_down=3, upsample_mode="nearest",
                  filter_skip_size=1, need_sigmoid=True, need_bias=True, pad="reflection", act_fun="LeakyReLU")
    ours = SkipNet(bands, channels=c, scales=layers)
    # same layers in the same order: map their state dict onto ours entry by entry, shapes checked
    t, o = theirs.state_dict(), ours.state_dict()
    assert len(t) == len(o)
    assert [v.shape for v in t.values()] == [v.shape for v in o.values()]
    # BN weights start at 1 and biases at 0 on both sides: randomise them so a swapped BN would show
    with torch.no_grad():
        for k, v in t.items():
            if v.is_floating_point() and ("weight" in k or "bias" in k):
                v.add_(torch.randn_like(v) * 0.1)
    ours.load_state_dict(dict(zip(o.keys(), (v.clone() for v in t.values()))))
    x = torch.rand(2, bands, 45, 37) * 0.1 + torch.randn(2, bands, 45, 37) * 0.1  # their fixed input + jitter
    theirs.train()
    ours.train()
    with torch.no_grad():
        a, b = theirs(x), ours(x)
    assert a.shape == b.shape == x.shape
    torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
    assert float((a - a.mean()).abs().max()) > 1e-3  # not a constant map that any network would match
    # the training-mode pass updated both sides' running statistics alike; eval uses them
    theirs.eval()
    ours.eval()
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-6)
