"""Which bundled model a strategy that needs one gets when none is given (pipeline.default_model), and what
'auto' says it resolved to: the engine's, so fers:detect and `fers detect --strategy auto` log the same."""
import pytest

from analyst_helpers import tiny_checkpoint
from fers.errors import ModelError
from fers.feedback import Feedback
from fers.pipeline import default_model, explain_auto, resolve_strategy, strategy_label


class Log(Feedback):
    def __init__(self):
        self.lines = []

    def info(self, message):
        self.lines.append(message)


@pytest.fixture
def models(tmp_path, monkeypatch):
    """Three spectral models: 12 bands over 400–510 nm, 20 bands over 1000–1190 nm, 8 bands without wavelengths."""
    tiny_checkpoint(tmp_path / "vnir-12.pt", 12, [400.0 + 10 * i for i in range(12)])
    tiny_checkpoint(tmp_path / "swir-20.pt", 20, [1000.0 + 10 * i for i in range(20)])
    tiny_checkpoint(tmp_path / "plain-8.pt", 8)
    monkeypatch.setenv("FERS_MODELS_DIR", str(tmp_path))
    return tmp_path


def test_by_position_the_largest_model_the_raster_has_the_bands_of(models):
    log = Log()
    assert default_model(0, 25, log).endswith("swir-20.pt")
    assert log.lines == ["no model given: using the bundled model swir-20 (20 bands): the bundled model with the "
                         "most bands that matches this raster of 25 bands (by position, as the raster carries no "
                         "wavelengths)"]
    assert default_model(0, 15, Log()).endswith("vnir-12.pt")
    assert default_model(8, 300, Log()).endswith("plain-8.pt")  # BANDS=N: the model of N bands, as before


def test_by_wavelength_only_models_whose_range_the_raster_covers(models):
    vnir = [395.0 + 5 * i for i in range(40)]  # 395–590 nm, 40 bands: covers the 12-band model only
    log = Log()
    assert default_model(0, 40, log, vnir).endswith("vnir-12.pt")
    assert "(by wavelength: the raster's 395–590 nm cover the model's 400–510 nm)" in log.lines[0]
    # the 8-band model has no wavelengths: it matches by position, and has fewer bands than the 12-band one
    swir = [990.0 + 10 * i for i in range(22)]
    assert default_model(0, 22, Log(), swir).endswith("swir-20.pt")


def test_no_model_matches_says_what_to_do(models):
    with pytest.raises(ModelError, match=r"no bundled model for this raster \(bundled: 8 bands \(plain-8\), 12 bands "
                                         r"\(vnir-12\), 20 bands \(swir-20\)\): it has 5 bands and no wavelengths; "
                                         r"choose strategy 'none' \(plain RX, no model\)"):
        default_model(0, 5, Log())
    thermal = [8000.0 + 100 * i for i in range(6)]  # no model's range, and too few bands by position
    with pytest.raises(ModelError, match="it has 6 bands; choose strategy 'none'"):
        default_model(0, 6, Log(), thermal)


def test_auto_resolves_and_says_why():
    assert resolve_strategy("auto", 200) == "additive" and resolve_strategy("auto", 50) == "multiplicative"
    assert resolve_strategy("auto", 200, spatial=False) == "spectral"
    assert strategy_label("additive") == "fusion B" and strategy_label("none") == "RX"
    assert explain_auto("multiplicative", 50) == ("strategy auto → fusion A (multiplicative): the model has both "
                                                  "branches, and with 50 bands (≤ 50) the paper's rule picks A (A up "
                                                  "to 50 bands, else B)")
    assert explain_auto("spectral", 100).startswith("strategy auto → spectral (spectral): the model holds no spatial")
