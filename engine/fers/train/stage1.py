"""Stage 1: train the FERD network by reverse distillation on background patches (SPEC §1)."""
from __future__ import annotations

import os
from typing import Optional, Sequence, Union

import torch

from ..checkpoint import save_checkpoint
from ..device import resolve_device
from ..errors import InputError
from ..feedback import Feedback
from ..spectral.loss import ferd_loss
from ..spectral.model import FERDNet, SpeFEN
from .data import check_training_bands, check_training_run, prepare_background
from .loop import TrainConfig, Trainer, TrainTask, seed_everything


def _band_meta(bands) -> list:
    return list(range(bands)) if isinstance(bands, int) else [int(b) for b in bands]


def train_spectral(sources: Sequence[str], output: str, bands: Union[int, Sequence[int]] = 100,
                   trunk: str = "wide_resnet50_2", backbone_weights: str = "imagenet", epochs: int = 60,
                   batch: int = 16, lr: float = 0.005, betas=(0.5, 0.999), seed: int = 10, patch: int = 64,
                   steps_per_epoch: int = 0, device: str = "auto", val_sources: Optional[Sequence[str]] = None,
                   val_patches: int = 16, resume: bool = True, feedback: Optional[Feedback] = None,
                   micro_batches: int = 1, band_stretch: float = 0.0, nodata=(), source_nodata: Optional[dict] = None,
                   spectral_jitter: float = 0.0) -> dict:
    """Train FERDNet; write a 'stage1' checkpoint (whole net + its Spe-FEN) to ``output``.

    ``bands`` is N (the first N bands, as the paper) or an explicit 0-based list; it
    must be given, since every scene must present the same bands to the CWL.
    ``band_stretch`` > 0 lets scenes at most that fraction short of N bands train too,
    resampled onto N bands (``fers.train.data``); 0 skips them, as the paper would.
    ``spectral_jitter`` σ > 0 multiplies each training patch by a smooth random spectral gain
    (``fers.train.data.spectral_gain``); 0, the paper's protocol, leaves the spectra as they are.
    ``nodata`` / ``source_nodata``: more no data, in every scene / per source file (``prepare_background``).
    """
    feedback = feedback or Feedback()
    check_training_bands(bands)
    output, nodata = check_training_run(sources, output, val_sources, None, backbone_weights, epochs, batch, lr,
                                        betas, seed, patch, steps_per_epoch, micro_batches, band_stretch,
                                        val_patches, spectral_jitter, nodata)
    if isinstance(bands, int) and bands <= 0:
        raise InputError("--bands must be given for training (the model's band count), e.g. 100")
    if patch % 8:
        raise InputError(f"patch size must be a multiple of 8 (the FERD network downsamples 3×), got {patch}")
    dev = resolve_device(device, feedback)
    output = os.path.abspath(output)
    if not os.path.isdir(os.path.dirname(output)):
        raise InputError(f"output folder does not exist: {os.path.dirname(output)}")
    n_bands = bands if isinstance(bands, int) else len(bands)
    seed_everything(seed)  # the same initial weights for the same seed
    net = FERDNet(n_bands, trunk=trunk)
    weights_source = net.load_backbone(backbone_weights)  # before the data: offline fails in a second
    data = prepare_background(sources, bands, patch, seed, val_sources, val_patches, feedback.sub(0, 0.02),
                              band_stretch=band_stretch, nodata=nodata, source_nodata=source_nodata,
                              spectral_jitter=spectral_jitter)
    feedback.info(f"stage 1: {n_bands} bands, trunk {trunk} ({weights_source}), device {dev}; "
                  f"training scenes {', '.join(data.train_names)}; validation "
                  f"{', '.join(data.val_names) or 'fixed patches of the training scenes'}")

    def loss(module, x):
        return ferd_loss(module(x), x)

    def save(path, history):
        spe = SpeFEN.from_ferd(net)
        last = history["epochs"][-1] if history["epochs"] else {}
        meta = {
            "bands": n_bands, "band_indices": _band_meta(bands), "wavelengths": None, "trunk": trunk,
            "backbone_weights": weights_source, "fpl_hidden": spe.hidden, "stage": 1,
            "training": {"data": data.summary, "epochs": epochs, "batch": batch, "lr": lr, "betas": list(betas),
                         "seed": seed, "steps_per_epoch": trainer.steps, "device": dev,
                         "selected_epoch": history["best_epoch"], "selection": "lowest validation loss"},
            "losses": {"initial_val": history.get("initial_val"), "best_val": history["best_val"],
                       "last_train": last.get("train"), "last_val": last.get("val")},
        }
        # the frozen trunk is left out: it is rebuilt from its recorded source, and would add ~100 MB
        save_checkpoint(path, "stage1", meta, spe_fen=spe.state_dict(), ferd=task.state())

    config = TrainConfig(epochs=epochs, batch=batch, lr=lr, betas=tuple(betas), seed=seed, patch=patch,
                         steps_per_epoch=steps_per_epoch, device=dev, micro_batches=micro_batches)
    hyper = {"data": data.fingerprint, "stage": 1, "bands": n_bands, "trunk": trunk, "backbone_weights": weights_source,
             "loss_weights": {"sim": 1.0, "mse": 0.1, "z": 0.1}, "band_stretch": float(band_stretch),
             "spectral_jitter": float(spectral_jitter),
             "nodata": data.summary["nodata"], "source_nodata": data.summary["source_nodata"]}
    task = TrainTask(net, loss, save, "stage 1 (FERD)", frozen=("encoder.",))
    trainer = Trainer(task, data.train, data.val, config, output,
                      feedback.sub(0.02, 1.0), hyper)
    history = trainer.fit(resume=resume)
    return {"output": output, "history": history, "log": trainer.log_path, "data": data.summary}
