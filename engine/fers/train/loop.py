"""The trainer both stages share: seeds, epochs of random patches, validation, resume, logs.

A stage supplies a ``TrainTask``: the trainable module, a loss on a batch, and how
to write the final checkpoint. The loop owns everything else, so stage 1 and
stage 2 behave identically (progress with ETA, cancel, resume, log format).

Model selection uses the validation loss on held-out background patches only:
never test ground truth (the reference scripts keep the epoch with the best test
AUC; SPEC §4 forbids it).

Scale-out is PyTorch's own: under ``torchrun`` (WORLD_SIZE > 1; ``fers-torchrun`` is torchrun that also starts
on a PyTorch built without libuv, as Debian's: ``fers.train.launch``) the trainable module
runs in DistributedDataParallel (NCCL on GPUs, gloo on CPUs). Every rank draws the
same full batch from the identically seeded sampler and trains on its share, so N
ranks compute what one process computes with ``micro_batches=N`` (gradient
accumulation over N slices of the batch, BatchNorm statistics per slice): that is
the equivalence the tests check. Rank 0 alone validates, logs and writes files.
"""
from __future__ import annotations

import json
import os
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import numpy as np
import torch

from ..io.weights import safe_torch_load
from .launch import tcpstore_without_libuv_if_needed
from ..errors import Cancelled, ModelError
from ..feedback import Feedback
from ..io.atomic import atomic_path


@dataclass
class TrainConfig:
    epochs: int = 60
    batch: int = 16
    lr: float = 0.005
    betas: tuple = (0.5, 0.999)  # reference code; the paper says (0.9, 0.95) (SPEC §1)
    seed: int = 10
    patch: int = 64
    steps_per_epoch: int = 0  # 0: as many patch pixels as the training scenes have pixels
    device: str = "cpu"
    threads: int = 0  # 0: torch's default
    micro_batches: int = 1  # gradient accumulation: the batch in this many slices (memory; DDP equivalence)
    extra: dict = field(default_factory=dict)


@dataclass
class TrainTask:
    module: torch.nn.Module  # holds the trainable parameters (frozen parts have requires_grad False)
    loss: Callable  # (module, batch tensor) -> (total, {name: float})
    save: Callable  # (path, history dict) -> None: write the final checkpoint
    name: str = "train"
    # state-dict prefixes that never change (frozen, eval-mode parts): kept out of resume files and
    # best-epoch copies, since they are rebuilt from their source (e.g. ImageNet weights)
    frozen: tuple = ()
    # (module, validation batch) -> None, or why this state is a degenerate solution that must not be
    # selected however low its loss (stage 2's loss has its minimum at a constant F_spa)
    degenerate: Optional[Callable] = None

    def state(self) -> dict:
        return {k: v for k, v in self.module.state_dict().items() if not k.startswith(self.frozen or ("\0",))}

    def load(self, state: dict) -> None:
        missing, unexpected = self.module.load_state_dict(state, strict=False)
        stray = [k for k in missing if not k.startswith(self.frozen or ("\0",))] + list(unexpected)
        if stray:
            raise ModelError(f"resume state does not match the network ({', '.join(stray[:5])} ...)")


class Distributed:
    """torchrun's environment: rank and world size, the process group, the rank's device."""

    def __init__(self, device: str):
        import torch.distributed as dist

        self.dist = dist
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = device
        self.owns_group = False
        if self.world > 1:
            if device.startswith("cuda"):
                self.device = f"cuda:{self.local_rank}"
                torch.cuda.set_device(self.local_rank)
            if not dist.is_initialized():
                # a process group set up by hand or by another launcher than fers-torchrun, on a PyTorch without
                # libuv (Debian's): the socket TCPStore, as fers.train.launch explains
                tcpstore_without_libuv_if_needed()
                dist.init_process_group("nccl" if self.device.startswith("cuda") else "gloo")
                self.owns_group = True

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        if not self.active:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.local_rank] if self.device.startswith("cuda") else None
        return DistributedDataParallel(module, device_ids=ids)

    def mean(self, value: float) -> float:
        if not self.active:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        self.dist.all_reduce(t)
        return float(t[0]) / self.world

    def barrier(self) -> None:
        if self.active:
            self.dist.barrier()

    def close(self) -> None:
        if self.owns_group:
            self.dist.destroy_process_group()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _fmt_time(s: float) -> str:
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


# what a resumed run must share with the run that wrote the resume file (epochs may grow; the device may change)
RESUME_SETTINGS = ("bands", "lr", "batch", "betas", "patch", "seed", "steps_per_epoch", "trunk", "stage", "teacher",
                   "adapt_bn", "spa_backbone_weights", "backbone_weights", "band_stretch", "spectral_jitter",
                   "loss_weights", "nodata", "source_nodata")


class Trainer:
    def __init__(self, task: TrainTask, sampler, val: np.ndarray, config: TrainConfig, output: str,
                 feedback: Optional[Feedback] = None, hyper: Optional[dict] = None):
        self.task, self.sampler, self.cfg, self.output = task, sampler, config, os.path.abspath(output)
        self.feedback = feedback or Feedback()
        self.ddp = Distributed(config.device)
        self.device = torch.device(self.ddp.device)
        if config.micro_batches < 1 or config.batch % (config.micro_batches * self.ddp.world):
            raise ModelError(f"batch {config.batch} cannot be split into {config.micro_batches * self.ddp.world} "
                             "equal slices (micro-batches × processes)")
        self.val = torch.from_numpy(val)
        self.resume_path = self.output + ".resume.pt"
        self.log_path = self.output + ".log.jsonl"
        self.hyper = dict(hyper or {}, **{k: v for k, v in asdict(config).items() if k != "extra"}, **config.extra)
        params = [p for p in task.module.parameters() if p.requires_grad]
        if not params:
            raise ModelError("nothing to train: every parameter is frozen")
        self.params = params
        self.opt = torch.optim.Adam(params, lr=config.lr, betas=tuple(config.betas))
        self.steps = config.steps_per_epoch or sampler.epoch_steps(config.batch)

    # -- persistence -------------------------------------------------------------------------
    def _log(self, record: dict) -> None:
        if not self.ddp.main:
            return
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def _save_resume(self, epoch: int, history: dict, best_state) -> None:
        if not self.ddp.main:
            return
        state = {"epoch": epoch, "module": self.task.state(), "opt": self.opt.state_dict(),
                 "torch_rng": torch.get_rng_state(), "sampler_rng": json.dumps(self.sampler.get_state()),
                 "history": json.dumps(history), "best": best_state, "hyper": json.dumps(self.hyper, default=str)}
        with atomic_path(self.resume_path) as tmp:  # a kill mid-save leaves the last epoch's file whole
            torch.save(state, tmp)

    def _load_resume(self):
        state = safe_torch_load(self.resume_path, "training resume file")
        try:
            saved = json.loads(state["hyper"])
            if not isinstance(saved, dict):
                raise TypeError
        except (TypeError, KeyError, ValueError, IndexError):
            raise ModelError(f"{self.resume_path} is not a FERS resume file; delete it, or use --restart") from None
        now = json.loads(json.dumps(self.hyper, default=str))  # as saved: tuples are lists there
        if "data" in now and saved.get("data") != now["data"]:
            # the background scenes (path, size, modification time: prepare_background's fingerprint) decide
            # what the resumed epochs train on; a resume file of other data would silently mix two trainings
            raise ModelError(f"cannot resume {self.resume_path}: it was started on other background data (other "
                             "files, or files changed since); give the same files, or --restart (RESTART) to start over")
        for k in RESUME_SETTINGS:
            if k in saved and k in now and saved[k] != now[k]:
                raise ModelError(f"cannot resume {self.resume_path}: it was started with {k}={str(saved[k])[:80]}, "
                                 f"now {k}={str(now[k])[:80]}; use the same settings, or --restart (RESTART) to "
                                 "start over")
        try:
            self.task.load(state["module"])
            self.opt.load_state_dict(state["opt"])
            torch.set_rng_state(state["torch_rng"])
            self.sampler.set_state(json.loads(state["sampler_rng"]))
            return int(state["epoch"]), json.loads(state["history"]), state["best"]
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as e:
            raise ModelError(f"{self.resume_path} is a damaged resume file ({type(e).__name__}); delete it, or "
                             "use --restart") from None

    # -- the loop ----------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> float:
        self.task.module.eval()
        total = 0.0
        for i in range(0, len(self.val), self.cfg.batch):
            loss, _ = self.task.loss(self.task.module, self.val[i:i + self.cfg.batch].to(self.device))
            total += float(loss) * len(self.val[i:i + self.cfg.batch])
        return total / len(self.val)

    @torch.no_grad()
    def degenerate(self) -> Optional[str]:
        if self.task.degenerate is None:
            return None
        self.task.module.eval()
        return self.task.degenerate(self.task.module, self.val[:max(self.cfg.batch, 2)].to(self.device))

    def _step(self, model, x: torch.Tensor) -> tuple:
        """One optimiser step on a batch: this rank's share of it, in micro-batches; the loss of the whole batch."""
        if self.ddp.active:
            x = x.chunk(self.ddp.world)[self.ddp.rank]
        slices = x.chunk(self.cfg.micro_batches)
        self.opt.zero_grad(set_to_none=True)
        total, parts_sum = 0.0, {}
        for i, xs in enumerate(slices):
            loss, parts = self.task.loss(model, xs)
            if not torch.isfinite(loss):
                return loss, parts
            sync = i == len(slices) - 1 or not self.ddp.active
            if sync:
                (loss / len(slices)).backward()
            else:
                with model.no_sync():  # all-reduce once, after the last slice
                    (loss / len(slices)).backward()
            total += float(loss.detach()) / len(slices)
            for k, v in parts.items():
                parts_sum[k] = parts_sum.get(k, 0.0) + v / len(slices)
        self.opt.step()
        parts = {k: self.ddp.mean(v) for k, v in parts_sum.items()}
        return torch.tensor(self.ddp.mean(total)), parts

    def fit(self, resume: bool = True) -> dict:
        try:
            return self._fit(resume)
        finally:
            self.ddp.close()

    def _fit(self, resume: bool) -> dict:
        fb = self.feedback
        if self.cfg.threads:
            torch.set_num_threads(self.cfg.threads)
        self.task.module.to(self.device)
        model = self.ddp.wrap(self.task.module)
        if self.ddp.active and self.ddp.main:
            fb.info(f"distributed training: {self.ddp.world} processes ({self.ddp.dist.get_backend()}), "
                    f"{self.cfg.batch // self.ddp.world} patches each per step")
        start_epoch, history, best = 0, {"epochs": [], "best_epoch": None, "best_val": None}, None
        if resume and os.path.exists(self.resume_path):
            start_epoch, history, best = self._load_resume()
            fb.info(f"resuming {self.task.name} from epoch {start_epoch} ({self.resume_path})")
            self._log({"event": "resume", "epoch": start_epoch})
        else:
            seed_everything(self.cfg.seed)
            if self.ddp.main and os.path.exists(self.log_path):
                os.remove(self.log_path)
            history["initial_val"] = self.validate()
            self._log({"event": "start", "hyper": self.hyper, "initial_val": history["initial_val"]})
            fb.info(f"{self.task.name}: {self.cfg.epochs} epochs × {self.steps} steps, batch {self.cfg.batch}, "
                    f"initial validation loss {history['initial_val']:.5f}")
        total_steps = self.cfg.epochs * self.steps
        t0, done0 = time.perf_counter(), start_epoch * self.steps
        for epoch in range(start_epoch, self.cfg.epochs):
            self.task.module.train()
            sums = {}
            for step in range(self.steps):
                if fb.cancelled():
                    # the resume file holds the last completed epoch: resuming replays this epoch
                    # exactly (same RNG states), so a resumed run equals an uninterrupted one
                    where = (f"resume with the same command (from epoch {epoch}, {self.resume_path})"
                             if os.path.exists(self.resume_path) else "no epoch was complete, so it restarts")
                    raise Cancelled(f"training cancelled: {where}; no model was written")
                x = torch.from_numpy(self.sampler.batch(self.cfg.batch)).to(self.device)
                loss, parts = self._step(model, x)
                if not torch.isfinite(loss):
                    raise ModelError(f"training diverged (loss {float(loss.detach())}) at epoch {epoch + 1}; lower the learning rate")
                for k, v in dict(parts, total=float(loss.detach())).items():
                    sums[k] = sums.get(k, 0.0) + v
                done = epoch * self.steps + step + 1
                rate = (time.perf_counter() - t0) / max(1, done - done0)
                fb.progress(done / total_steps, f"epoch {epoch + 1}/{self.cfg.epochs} step {step + 1}/{self.steps} "
                            f"loss {float(loss.detach()):.4f} ETA {_fmt_time(rate * (total_steps - done))}")
            train = {k: v / self.steps for k, v in sums.items()}
            val = self.validate()
            rec = {"epoch": epoch + 1, "train": train, "val": val,
                   "seconds_per_step": (time.perf_counter() - t0) / max(1, (epoch + 1) * self.steps - done0)}
            why = self.degenerate()
            if why:
                rec["degenerate"] = why
            history["epochs"].append(rec)
            if why:
                if not any(e.get("degenerate") for e in history["epochs"][:-1]):
                    fb.warn(f"epoch {epoch + 1}: {why}; degenerate epochs are never selected"
                            + (f" (the best so far is epoch {history['best_epoch']})" if history["best_epoch"] else ""))
            elif history["best_val"] is None or val < history["best_val"]:
                history["best_val"], history["best_epoch"] = val, epoch + 1
                best = {k: v.detach().cpu().clone() for k, v in self.task.state().items()}
            self._log({"event": "epoch", **rec})
            fb.info(f"epoch {epoch + 1}: train loss {train['total']:.5f}, validation loss {val:.5f}")
            self._save_resume(epoch + 1, history, best)
        if best is None and history["epochs"]:  # every epoch was degenerate: any other would have been kept
            raise ModelError(f"{self.task.name}: every epoch gave a degenerate model ({history['epochs'][-1]['degenerate']}); "
                             "no model was written: train with a lower learning rate, another seed or fewer epochs")
        if best is not None:
            self.task.load(best)  # the epoch with the lowest validation loss
        if self.ddp.main:
            self.task.save(self.output, history)
            self._log({"event": "done", "best_epoch": history["best_epoch"], "best_val": history["best_val"],
                       "output": self.output})
            os.remove(self.resume_path)
        self.ddp.barrier()
        return history
