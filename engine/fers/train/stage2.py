"""Stage 2: train the spatial branch (Spa-FEN + FRN) against a frozen Spe-FEN teacher (SPEC §2)."""
from __future__ import annotations

import os
from typing import Optional, Sequence, Union

import torch
from torch import nn

from ..checkpoint import load_model, save_checkpoint, spe_record
from ..device import resolve_device
from ..errors import InputError
from ..feedback import Feedback
from ..spatial.loss import LAMBDA_RECON, W_COS, W_SSIM, W_VAR, fers_loss
from ..spatial.model import FRN, MIN_SIZE, SpaFEN
from .data import check_training_bands, check_training_run, prepare_background
from .loop import TrainConfig, Trainer, TrainTask, seed_everything

# An epoch whose F_spa varies less than this on every validation patch and channel is a collapsed
# Spa-FEN (healthy ones have channel stds of 0.1-1 on the [-0.1, 0.1] scaled cubes)
COLLAPSE_SPREAD = 1e-6


class SpatialTrainingNet(nn.Module):
    """What stage 2 trains: Spa-FEN (compression, LightSPP, SE; frozen ResNet-34) and the FRN.

    The teacher is deliberately not a submodule: it is fixed, so it stays out of the
    optimiser, the resume files and ``.train()``.
    """

    def __init__(self, spa: SpaFEN, frn: FRN):
        super().__init__()
        self.spa, self.frn = spa, frn

    def forward(self, x: torch.Tensor, f_spe: torch.Tensor) -> tuple:
        """(F_spa, Ĥ = FRN(F_spe + F_spa)): one forward, so that DistributedDataParallel sees it."""
        f_spa = self.spa(x)
        return f_spa, self.frn(f_spe + f_spa)


def _freeze_teacher(spe: nn.Module) -> nn.Module:
    for p in spe.parameters():
        p.requires_grad_(False)
    return spe.eval()


def _resolve_bands(bands, teacher_meta: dict, teacher: str):
    """Band selection for the data: the teacher's own bands unless told otherwise, and never a different count."""
    n_teacher = int(teacher_meta["bands"])
    t_idx = [int(b) for b in teacher_meta.get("band_indices") or range(n_teacher)]
    if bands is None or (isinstance(bands, int) and bands == 0):
        # an explicit band list of the teacher is reused as it is; "first N" stays an int (prepare_background's N)
        return (n_teacher if t_idx == list(range(n_teacher)) else t_idx), None
    n = bands if isinstance(bands, int) else len(bands)
    if n != n_teacher:
        raise InputError(f"the teacher {teacher} was trained on {n_teacher} bands, but {n} are asked for; "
                         f"stage 2 must use the teacher's bands: omit --bands or use --bands {n_teacher}")
    idx = list(range(n)) if isinstance(bands, int) else [int(b) for b in bands]
    warning = None
    if idx != t_idx:
        warning = (f"the selected bands differ from the teacher's (teacher: {t_idx[:5]}{' ...' if n > 5 else ''}); "
                   "the student learns from features of bands the teacher was not trained on")
    return bands, warning


def train_spatial(sources: Sequence[str], output: str, teacher: str, bands: Union[None, int, Sequence[int]] = None,
                  backbone_weights: str = "imagenet", adapt_bn: bool = True, epochs: int = 60, batch: int = 16,
                  lr: float = 0.005, betas=(0.5, 0.999), seed: int = 10, patch: int = 64, steps_per_epoch: int = 0,
                  device: str = "auto", val_sources: Optional[Sequence[str]] = None, val_patches: int = 16,
                  resume: bool = True, feedback: Optional[Feedback] = None,
                  micro_batches: int = 1, band_stretch: float = 0.0, nodata=(),
                  source_nodata: Optional[dict] = None) -> dict:
    """Train Spa-FEN and FRN; write a 'fers' checkpoint (teacher's Spe-FEN + the new Spa-FEN) to ``output``.

    ``teacher`` is any model ``fers.checkpoint.load_model`` reads (our stage1 /
    spe-fen / fers checkpoints, or the authors' published folder); only its Spe-FEN
    is used, frozen and in eval mode. ``bands`` defaults to the teacher's bands and
    must match their count. ``backbone_weights`` is the ResNet-34 source
    ("imagenet", "random", a file or "partial:FILE"); ``adapt_bn`` lets its
    BatchNorm statistics adapt during training (the reference's behaviour).
    ``band_stretch``: as for stage 1 (scenes slightly short of the bands, resampled).
    Returns ``{"output", "history", "log", "data", "spa_fen"}`` (the trained
    Spa-FEN in eval mode, the one written to ``output``).
    """
    feedback = feedback or Feedback()
    check_training_bands(bands)
    output, nodata = check_training_run(sources, output, val_sources, teacher, backbone_weights, epochs, batch, lr,
                                        betas, seed, patch, steps_per_epoch, micro_batches, band_stretch,
                                        val_patches, 0.0, nodata)
    if patch < MIN_SIZE:
        raise InputError(f"patch size must be at least {MIN_SIZE} px for the Spa-FEN's ResNet-34 (it downsamples "
                         f"{MIN_SIZE}×), got {patch}")
    if batch < 1:
        raise InputError(f"batch must be at least 1, got {batch}")
    dev = resolve_device(device, feedback)
    output = os.path.abspath(output)
    if not os.path.isdir(os.path.dirname(output)):
        raise InputError(f"output folder does not exist: {os.path.dirname(output)}")
    # the teacher first: a wrong path or band count fails before anything is built or read
    model = load_model(teacher)
    if model.spe is None:
        raise InputError(f"the teacher {teacher} holds no spectral branch (Spe-FEN)")
    spe = _freeze_teacher(model.spe)
    # the file or folder actually read (a bundled model's bare name resolves to its path)
    teacher_source = os.path.abspath(model.source or teacher)
    n_bands = int(model.meta["bands"])
    data_bands, warning = _resolve_bands(bands, model.meta, teacher)
    if warning:
        feedback.warn(warning)
    band_indices = list(range(n_bands)) if isinstance(data_bands, int) else [int(b) for b in data_bands]

    seed_everything(seed)  # the same initial weights for the same seed
    spa = SpaFEN(n_bands, adapt_bn=adapt_bn)
    frn = FRN(n_bands)
    weights_source = spa.load_backbone(backbone_weights)  # before the data: offline fails in a second
    net = SpatialTrainingNet(spa, frn)
    data = prepare_background(sources, data_bands, patch, seed, val_sources, val_patches, feedback.sub(0, 0.02),
                              band_stretch=band_stretch, nodata=nodata, source_nodata=source_nodata)
    spe.to(dev)
    feedback.info(f"stage 2: {n_bands} bands, teacher {model.describe()}, ResNet-34 ({weights_source}, BatchNorm "
                  f"{'adapting' if adapt_bn else 'fixed'}), device {dev}; training scenes {', '.join(data.train_names)}; "
                  f"validation {', '.join(data.val_names) or 'fixed patches of the training scenes'}")

    def loss(module, x):
        # the teacher gets no gradient and none flows through it to the student: F_spe depends on H only
        with torch.no_grad():
            f_spe = spe(x)
        f_spa, recon = module(x, f_spe)
        return fers_loss(f_spe, f_spa, x, recon)

    def collapsed(module, x):
        # F_spa = 0 is the loss's global minimum (L_cc = 0, L_cos = 1, L_var = 1: total 0.2 plus the
        # reconstruction, which the FRN rebuilds from F_spe alone); once a ReLU Spa-FEN lands there its
        # gradient is zero and it never leaves. Seen at the paper's 60 epochs on the 200-band data.
        f_spa, _ = module(x, spe(x))
        spread = float(f_spa.flatten(2).std(dim=2).max())
        return None if spread > COLLAPSE_SPREAD else (
            f"the Spa-FEN collapsed: F_spa is constant on every validation patch (largest channel std {spread:.2g})")

    def save(path, history):
        last = history["epochs"][-1] if history["epochs"] else {}
        meta = {k: v for k, v in model.meta.items() if k not in ("training", "losses", "created", "engine_version")}
        # the Spe-FEN's own training record: a stage-1 teacher's "training", but a FERS (stage-2) teacher's
        # "teacher_training" (its "training" describes the Spa-FEN this run replaces)
        meta.update({"teacher_" + k: v for k, v in spe_record(model.meta).items() if k in ("training", "losses")})
        meta.update({
            "bands": n_bands, "band_indices": band_indices, "wavelengths": model.meta.get("wavelengths"),
            "fpl_hidden": int(spe.hidden), "stage": 2,
            "spa_backbone": "resnet34", "spa_backbone_weights": weights_source, "adapt_bn": bool(adapt_bn),
            "teacher": teacher_source,
            "training": {"data": data.summary, "epochs": epochs, "batch": batch, "lr": lr, "betas": list(betas),
                         "seed": seed, "steps_per_epoch": trainer.steps, "device": dev,
                         "selected_epoch": history["best_epoch"],
                         "selection": "lowest validation loss among epochs whose Spa-FEN did not collapse",
                         "collapsed_epochs": [e["epoch"] for e in history["epochs"] if e.get("degenerate")],
                         "loss_weights": hyper["loss_weights"]},
            "losses": {"initial_val": history.get("initial_val"), "best_val": history["best_val"],
                       "last_train": last.get("train"), "last_val": last.get("val")},
        })
        # the Spa-FEN is saved whole (ResNet-34 included, ~34 MB): its BatchNorm statistics are trained state
        # when they adapt, and a complete state keeps inference offline
        save_checkpoint(path, "fers", meta, spe_fen=spe.state_dict(), spa_fen=spa.state_dict())

    config = TrainConfig(epochs=epochs, batch=batch, lr=lr, betas=tuple(betas), seed=seed, patch=patch,
                         steps_per_epoch=steps_per_epoch, device=dev, micro_batches=micro_batches)
    hyper = {"data": data.fingerprint, "stage": 2, "bands": n_bands, "teacher": teacher_source, "spa_backbone_weights": weights_source,
             "adapt_bn": bool(adapt_bn), "band_stretch": float(band_stretch),
             "nodata": data.summary["nodata"], "source_nodata": data.summary["source_nodata"],
             "loss_weights": {"cc": 1.0, "cos": W_COS, "var": W_VAR, "mse": LAMBDA_RECON,
                              "ssim": LAMBDA_RECON * W_SSIM}}
    if adapt_bn:
        # conv weights and BN affine parameters never change: keep them out of resume files, but keep the
        # BN running statistics, which do (full parameter names work as TrainTask prefixes)
        frozen = tuple(f"spa.backbone.{k}" for k, _ in spa.backbone.named_parameters())
    else:
        frozen = ("spa.backbone.",)
    task = TrainTask(net, loss, save, "stage 2 (Spa-FEN)", frozen=frozen, degenerate=collapsed)
    trainer = Trainer(task, data.train, data.val, config, output, feedback.sub(0.02, 1.0), hyper)
    history = trainer.fit(resume=resume)
    return {"output": output, "history": history, "log": trainer.log_path, "data": data.summary,
            "spa_fen": spa.eval()}
