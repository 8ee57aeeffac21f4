"""scripts/model_card.py: a bundled model's card is regenerated from the repository alone (checkpoint, its
facts file, bench-accuracy's CSV), with nothing typed by hand."""
import csv
import os
import sys

import pytest

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, "scripts"))
import model_card  # noqa: E402

MODELS = os.path.join(REPO, "resources", "models")


def _csv(path, bands):
    rows = [("paper set", "p1", {"RX": 0.80, "RX trimmed": 0.81, "authors": 0.95, "ours spectral": 0.96,
                                 "ours A": 0.94, "ours B": 0.97}),
            ("other held-out", "h1", {"RX": 0.99, "RX trimmed": 0.99, "authors": 0.97, "ours spectral": 0.9851,
                                      "ours A": 0.9849, "ours B": 0.99})]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["scene", "group", "bands", "method", "auc", "seconds"])
        w.writeheader()
        for g, n, methods in rows:
            for m, a in methods.items():
                w.writerow({"scene": n, "group": g, "bands": bands, "method": m, "auc": a, "seconds": 0.1})


@pytest.mark.parametrize("bands", [100, 200])
def test_the_shipped_card_is_what_its_checkpoint_and_facts_give(tmp_path, bands):
    name = f"fers-aviris-{bands}"
    _csv(tmp_path / "accuracy.csv", bands)
    out = tmp_path / f"{name}.md"
    model_card.main(os.path.join(MODELS, f"{name}.pt"), os.path.join(MODELS, f"{name}.facts.json"),
                    str(tmp_path / "accuracy.csv"), str(out))
    card, shipped = out.read_text(), open(os.path.join(MODELS, f"{name}.md")).read()
    head = "## ROC AUC"
    # everything but the figures (training data, networks, recipe, hardware, changes) comes back word for word
    assert card.split(head)[0] == shipped.split(head)[0]
    # the bar, read off the CSV given: A falls 0.0051 below h1's RX, spectral 0.0049 (within the 0.005)
    assert "| fusion A | 0.9400 | yes | no | h1 (0.9849 vs 0.9900) |" in card
    assert "| spectral | 0.9600 | yes | yes | none |" in card
    assert "| authors' checkpoint | 0.9500 | yes |  | h1 (0.9700 vs 0.9900) |" in card


def test_recorded_paths_are_shown_from_shared_wherever_the_model_was_trained():
    # a checkpoint keeps the absolute path its weights had on the training machine; CI and users clone elsewhere
    assert model_card.short("file:/work/shared/weights/a/enc.pt (layer1)") == "file:shared/weights/a/enc.pt (layer1)"
    assert model_card.short("/check/work/shared/data/x.mat, /home/u/fers/shared/data/y.mat") == \
        "shared/data/x.mat, shared/data/y.mat"
    assert model_card.short("random") == "random"
