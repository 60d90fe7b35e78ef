"""``train(cfg)``: one training run, top to bottom — set-up, data, model, optimiser, resume, epochs, report.

The task (``cfg.task``: classification, segmentation or detection) supplies the data, the loss and the metrics;
everything else here is the same for every task: fine-tuning, freezing, EMA, mixed precision, QAT, torchrun, atomic
checkpoints and resume.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from mobilenetv2 import distributed as D
from mobilenetv2.console import progress, progress_enabled
from mobilenetv2.data import DataConfig
from mobilenetv2.errors import UserError
from mobilenetv2.io import FolderLock, atomic_path, check_writable
from mobilenetv2.tasks import get_task
from mobilenetv2.training.config import TrainConfig
from mobilenetv2.training.defaults import resolve_and_describe
from mobilenetv2.training.finetune import load_pretrained, prepare_model
from mobilenetv2.training.freeze import frozen_stages, keep_frozen_bn, set_frozen
from mobilenetv2.training.logs import TensorBoard, plot_curves, write_metrics_csv
from mobilenetv2.training.optim import build_optimizer, build_scheduler
from mobilenetv2.training.qat import finalize_qat, prepare_qat
from mobilenetv2.training.state import STATE_NAME, load_state, rng_state, save_state, set_rng_state
from mobilenetv2.weights import Checkpoint, load_checkpoint, save_checkpoint

log = logging.getLogger(__name__)
# Files that mark a folder as a training run: --out refuses such a folder (use --resume to continue it).
RUN_FILES = ("best.safetensors", "last.safetensors", STATE_NAME, "metrics.csv")


@dataclass
class TrainResult:
    run_dir: Path
    best_checkpoint: Path
    best_metric: float
    history: list[dict]
    final_metrics: dict


def train(cfg: TrainConfig, *, model: nn.Module | None = None,
          on_epoch_end: Callable[[int, dict], None] | None = None) -> TrainResult:
    """Train (or fine-tune) a model as ``cfg`` says; see ``TrainConfig`` for every option."""
    return Trainer(cfg, model).fit(on_epoch_end)


class Trainer:
    """One run: ``__init__`` prepares everything in order, ``fit()`` runs the epochs and the final report."""

    def __init__(self, cfg: TrainConfig, model: nn.Module | None = None):
        # 1. set-up: device, processes, the data-dependent defaults, the run folder, seeds
        self.device = pick_device(cfg)
        self.distributed = D.init_distributed(self.device.type)
        if cfg.sync_bn and self.distributed and self.device.type != "cuda":
            raise UserError("--sync-bn needs CUDA (PyTorch's SyncBatchNorm does not run on CPU/gloo)")
        self.state = load_state(cfg.resume) if cfg.resume else None
        self.cfg, self.defaults_note = resolve_and_describe(cfg)  # one look at the data for both
        cfg = self.cfg
        self.task = get_task(cfg.task)
        self.run_dir = run_folder(cfg)
        seed_everything(cfg.seed, cfg.deterministic)

        # 2. data (fine-tuning keeps the normalisation the pretrained weights were trained with)
        pretrained = load_pretrained(cfg) if model is None else None
        self.data = self.task.build_data(data_config(cfg, pretrained))
        self.class_names = list(self.data.class_names)

        # 3. model: pretrained weights and a new head, freezing, quantization-aware training, SyncBN
        if model is None:
            calibration = self.data.train_loader if self.state is None else None  # a resumed run has its statistics
            model = prepare_model(cfg, self.task, len(self.class_names), pretrained, calibration)
        check_outputs(model, len(self.class_names))
        self.frozen = frozen_stages(model, cfg.freeze)
        self.head_only = frozen_stages(model, "all") if cfg.head_epochs else []
        if cfg.qat:
            model = prepare_qat(model)
        if cfg.sync_bn and self.distributed:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.memory_format = torch.channels_last if cfg.channels_last else torch.preserve_format
        self.model = model.to(self.device, memory_format=self.memory_format)
        self.ddp_model: nn.Module = self.model
        self.phase = ""

        # 4. optimiser, schedule, loss, weight averaging
        self.steps_per_epoch = min(len(self.data.train_loader), cfg.limit_batches or len(self.data.train_loader))
        self.optimizer = build_optimizer(self.model, cfg)
        self.scheduler = build_scheduler(self.optimizer, self.steps_per_epoch, cfg)
        self.scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp == "fp16")
        self.criterion = self.task.criterion(self.data, cfg.label_smoothing, self.model).to(self.device)
        self.ema = (AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
                    if cfg.ema else None)

        # 5. resume: weights, optimiser, schedule, random state and history of the interrupted run
        self.history: list[dict] = []
        self.start_epoch, self.best_metric, self.best_epoch, self.bad_epochs = 0, -1.0, -1, 0
        if self.state is not None:
            self.restore(self.state)

    # -- the run ---------------------------------------------------------------------------------------------------------
    def fit(self, on_epoch_end: Callable[[int, dict], None] | None = None) -> TrainResult:
        cfg = self.cfg
        if D.is_main():
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.lock = FolderLock(self.run_dir, "mobilenetv2 train").acquire()  # one run writes a folder at a time
            cfg.to_yaml(self.run_dir / "config.yaml")
            self.tb = TensorBoard(self.run_dir / "tb")
            if self.defaults_note:
                log.info("%s", self.defaults_note)
            log.info("training %s for %s on %s (%d classes, %d training images, %dpx, augment %s) on %s%s; run folder %s",
                     self.model.arch["name"] if hasattr(self.model, "arch") else type(self.model).__name__, cfg.task,
                     cfg.data, len(self.class_names), len(self.data.train_loader.dataset), cfg.input_size, cfg.augment,
                     self.device, f" x{D.world_size()} processes" if self.distributed else "", self.run_dir)
        try:
            for epoch in range(self.start_epoch, cfg.epochs):
                self.set_phase(epoch)
                start = time.perf_counter()
                metrics: dict[str, Any] = {"epoch": epoch + 1, **self.train_epoch(epoch)}
                elapsed = time.perf_counter() - start
                metrics.update(self.validate())
                metrics.update(lr=base_lr(self.optimizer), time_s=round(time.perf_counter() - start, 3),
                               images_per_s=metrics["train_images"] * D.world_size() / max(elapsed, 1e-9))
                stop = self.end_epoch(epoch, metrics)
                if on_epoch_end is not None:
                    on_epoch_end(epoch, metrics)
                if stop:
                    log.info("early stop: no better %s for %d epochs", self.task.monitor, cfg.early_stop)
                    break
            final = self.final_report()
        finally:
            if D.is_main():
                self.tb.close()
                self.lock.release()
        return TrainResult(self.run_dir, self.run_dir / "best.safetensors", self.best_metric, self.history, final)

    # -- phases: head only first, then the whole model (minus --freeze) ---------------------------------------------
    def set_phase(self, epoch: int) -> None:
        phase = "head" if epoch < self.cfg.head_epochs else "full"
        if phase == self.phase:
            return
        self.phase = phase
        set_frozen(self.head_only, False)
        set_frozen(self.head_only if phase == "head" else [], True)
        set_frozen(self.frozen, True)
        if self.distributed:  # DDP registers the parameters that need gradients when it is built
            self.ddp_model = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if self.cfg.head_epochs:
            frozen = f" (frozen up to {self.cfg.freeze})" if self.cfg.freeze else ""
            log.info("epoch %d: training the %s", epoch + 1, "classifier only" if phase == "head" else "whole model" + frozen)

    def frozen_now(self) -> list[nn.Module]:
        return self.frozen + (self.head_only if self.phase == "head" else [])

    # -- one epoch -----------------------------------------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> dict[str, float]:
        cfg = self.cfg
        self.ddp_model.train()
        keep_frozen_bn(self.frozen_now())
        self.data.set_epoch(epoch)
        meter = self.task.meter(getattr(self.model, "arch", None))
        bar = progress_bar(self.steps_per_epoch * cfg.batch_size, f"epoch {epoch + 1}/{cfg.epochs}", cfg.progress)
        seen = 0
        for step, (images, targets) in enumerate(self.data.train_loader):
            if step >= self.steps_per_epoch:
                break
            hard = targets  # accuracy is measured against the labels before mixup/cutmix
            if self.data.batch_transform is not None:
                images, targets = self.data.batch_transform(images, targets)
            loss, outputs = self.train_step(images, targets)
            meter.update(self.task.main_output(outputs), hard, loss)
            seen += images.shape[0]
            bar.update(images.shape[0])
            bar.set_postfix(loss=f"{loss:.3f}", lr=f"{base_lr(self.optimizer):.3g}")
        bar.close()
        seen = int(D.all_reduce_sum([seen], self.device)[0])
        return {**meter.compute("train_", self.device), "train_images": seen}

    def train_step(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[float, torch.Tensor]:
        images = images.to(self.device, non_blocking=True, memory_format=self.memory_format)
        targets = targets.to(self.device, non_blocking=True)
        with autocast(self.device, self.cfg.amp):
            outputs = as_float(self.ddp_model(images))
            loss = self.criterion(outputs, targets)
        if not torch.isfinite(loss):
            raise UserError(f"the loss became {loss.item()} (diverged); lower --lr (now {self.cfg.lr}) or use --clip-grad")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg.clip_grad:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        return loss.item(), detach(outputs)

    def eval_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.model

    @torch.no_grad()
    def batches(self, model: nn.Module, loader) -> Iterator[tuple[torch.Tensor, Any, torch.Tensor]]:
        """(outputs, targets, images) of each batch of ``loader``, outputs as float32 on the CPU."""
        model.eval()
        for images, targets in loader:
            with autocast(self.device, self.cfg.amp):
                outputs = model(images.to(self.device, memory_format=self.memory_format)).float().cpu()
            yield outputs, targets, images

    def validate(self) -> dict[str, float]:
        meter = self.task.meter(getattr(self.model, "arch", None))
        for outputs, targets, _ in self.batches(self.eval_model(), self.data.val_loader):
            meter.update(outputs, targets, self.task.eval_loss(outputs, targets))
        return meter.compute("val_", self.device)

    # -- saving ----------------------------------------------------------------------------------------------------------
    def end_epoch(self, epoch: int, metrics: dict) -> bool:
        """Save checkpoints, state and logs (main process); True when early stopping says stop."""
        improved = metrics[self.task.monitor] > self.best_metric
        if improved:
            self.best_metric, self.best_epoch, self.bad_epochs = metrics[self.task.monitor], epoch, 0
        else:
            self.bad_epochs += 1
        metrics["best"] = improved
        self.history.append(metrics)
        if D.is_main():
            self.save_weights(self.run_dir / "last.safetensors", metrics)
            if improved:
                self.save_weights(self.run_dir / "best.safetensors", metrics)
            save_state(self.run_dir, self.resume_state(epoch))
            write_metrics_csv(self.run_dir / "metrics.csv", self.history)
            self.tb.log(epoch, metrics)
            log.info("epoch %d/%d  train_loss %.4f  val_loss %.4f  %s %.2f%%  lr %.3g  %.0f img/s  %.1fs%s",
                     epoch + 1, self.cfg.epochs, metrics["train_loss"], metrics["val_loss"], self.task.monitor,
                     100 * metrics[self.task.monitor], metrics["lr"], metrics["images_per_s"], metrics["time_s"],
                     "  *best" if improved else "")
        D.barrier()
        return bool(self.cfg.early_stop) and self.bad_epochs >= self.cfg.early_stop

    def save_weights(self, path: Path, metrics: dict) -> None:
        """Our checkpoint format (a plain safetensors state dict for models from elsewhere), atomically."""
        model = self.eval_model()
        if self.cfg.qat:
            model = finalize_qat(copy.deepcopy(model))
        if hasattr(model, "arch"):
            save_checkpoint(path, model, self.class_names, self.data.preprocessing, metrics,
                            extra={"config": self.cfg.to_dict()}, task=self.task.name)
        else:
            save_plain_state_dict(path, model)

    def resume_state(self, epoch: int) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else {}, "epoch": epoch, "rng": rng_state(),
            "best_metric": self.best_metric, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs,
            "history": self.history,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None and state["ema"]:
            self.ema.load_state_dict(state["ema"])
        self.start_epoch = int(state["epoch"]) + 1
        self.best_metric, self.best_epoch = float(state["best_metric"]), int(state["best_epoch"])
        self.bad_epochs, self.history = int(state["bad_epochs"]), list(state["history"])
        set_rng_state(state["rng"])

    # -- the report ------------------------------------------------------------------------------------------------------
    def final_report(self) -> dict:
        """Evaluate the best weights on the validation set (main process) and write run_dir/eval and curves.png."""
        if not D.is_main():
            D.barrier()
            return {}
        best = self.run_dir / "best.safetensors"
        model = self.eval_model()
        if self.history and not self.cfg.qat and hasattr(model, "arch"):
            model = load_checkpoint(best).model.to(self.device)
        loader = self.data.val_loader
        if self.distributed:  # the val loader holds this process's shard only
            cfg = self.cfg
            loader, _ = self.task.eval_loader(cfg.data, self.data.preprocessing, split="val", batch_size=cfg.batch_size,
                                              workers=0, val_split=cfg.val_split, seed=cfg.seed, data_root=cfg.data_root)
        evaluator = self.task.evaluator(self.data.preprocessing, getattr(model, "arch", None))
        for outputs, targets, images in self.batches(model, loader):
            evaluator.update(outputs, targets, images)
        report = evaluator.finish(self.class_names, len(loader.dataset), gather=False)  # main process, whole set
        report.write(self.run_dir / "eval")
        if self.history:
            plot_curves(self.run_dir / "curves.png", self.history, self.task.monitor)
        log.info("best epoch %d: %s; report in %s, weights %s", self.best_epoch + 1, report.summary(),
                 self.run_dir / "eval", best)
        D.barrier()
        return report.to_dict()


# -- set-up helpers ------------------------------------------------------------------------------------------------------
def pick_device(cfg: TrainConfig) -> torch.device:
    device = D.local_device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {cfg.device} requested but CUDA is not available; use --device cpu or auto")
    if cfg.amp == "fp16" and device.type != "cuda":
        raise UserError("--amp fp16 needs CUDA; on CPU use --amp bf16")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def run_folder(cfg: TrainConfig) -> Path:
    """The run folder: ``--resume``'s, or a new ``--out`` (never a finished run's: that needs ``--resume``)."""
    if cfg.resume:
        return Path(cfg.resume)
    path = Path(cfg.out) if cfg.out else default_run_dir(cfg)
    if path.exists() and not path.is_dir():
        raise UserError(f"--out {path} is a file, not a folder")
    found = [name for name in RUN_FILES if (path / name).exists()]
    if found:
        raise UserError(f"--out {path} already holds a training run ({', '.join(found)}); continue it with "
                        f"--resume {path}, or choose another --out")
    check_writable(path, folder=True)
    return path


def default_run_dir(cfg: TrainConfig) -> Path:
    name = Path(cfg.data.rstrip("/")).name.split(":")[-1] or "data"
    return Path("runs") / f"{name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def data_config(cfg: TrainConfig, pretrained: Checkpoint | None = None) -> DataConfig:
    """The data options of ``cfg``; fine-tuning keeps the normalisation the pretrained weights were trained with."""
    options = {k: v for k, v in cfg.to_dict().items() if k in DataConfig.__dataclass_fields__}
    if pretrained is not None:
        options |= {"mean": pretrained.preprocessing.mean, "std": pretrained.preprocessing.std}
    return DataConfig(**options)


def check_outputs(model: nn.Module, num_classes: int) -> None:
    out = getattr(model, "num_classes", None)
    if out is None:
        last = [m for m in model.modules() if isinstance(m, nn.Linear)]
        out = last[-1].out_features if last else None
    if out is not None and out != num_classes:
        raise UserError(f"the model has {out} outputs but the data has {num_classes} classes")


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


# -- step helpers --------------------------------------------------------------------------------------------------------
def autocast(device: torch.device, amp: str):
    if amp == "none":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def as_float(outputs: Any) -> Any:
    """Float32 outputs for the loss (a tuple when the model also gives auxiliary outputs)."""
    return tuple(o.float() for o in outputs) if isinstance(outputs, tuple) else outputs.float()


def detach(outputs: Any) -> Any:
    return tuple(o.detach() for o in outputs) if isinstance(outputs, tuple) else outputs.detach()


def base_lr(optimizer: torch.optim.Optimizer) -> float:
    """The learning rate without stage multipliers (the head's): what the progress bar and metrics.csv show."""
    group = next((g for g in optimizer.param_groups if g.get("lr_mult", 1.0) == 1.0), optimizer.param_groups[-1])
    return group["lr"]


def progress_bar(total: int, desc: str, enabled: bool):
    """A redrawing bar only on a terminal; under CI, ``| tee`` or nohup the per-epoch log line is all there is."""
    return progress(total=total, desc=desc, unit="img", unit_scale=True, enabled=enabled and D.is_main() and progress_enabled())


def save_plain_state_dict(path: Path, model: nn.Module) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp))
