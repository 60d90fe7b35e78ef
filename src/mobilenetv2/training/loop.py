"""``train(cfg)``: the training loop, with fine-tuning, EMA, mixed precision, resume and torchrun support."""

from __future__ import annotations

import contextlib
import copy
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from mobilenetv2.errors import UserError
from mobilenetv2.training import distributed as D
from mobilenetv2.training.config import TrainConfig
from mobilenetv2.training.defaults import resolve_defaults
from mobilenetv2.training.freeze import frozen_stages, keep_frozen_bn, set_frozen
from mobilenetv2.training.logs import TensorBoard, plot_curves, write_metrics_csv
from mobilenetv2.training.optim import build_optimizer, build_scheduler
from mobilenetv2.training.state import load_state, rng_state, save_state, set_rng_state

if TYPE_CHECKING:
    from mobilenetv2.weights import Checkpoint


@dataclass
class TrainResult:
    run_dir: Path
    best_checkpoint: Path
    best_metric: float
    history: list[dict]
    final_metrics: dict


def data_config(cfg: TrainConfig, pretrained: Checkpoint | None = None):
    """The data options of ``cfg``; fine-tuning keeps the normalisation the pretrained weights were trained with."""
    from mobilenetv2.data import DataConfig

    names = DataConfig.__dataclass_fields__
    options = {k: v for k, v in cfg.to_dict().items() if k in names}
    if pretrained is not None:
        options |= {"mean": pretrained.preprocessing.mean, "std": pretrained.preprocessing.std}
    return DataConfig(**options)


def default_run_dir(cfg: TrainConfig) -> Path:
    name = Path(cfg.data.rstrip("/")).name.split(":")[-1] or "data"
    return Path("runs") / f"{name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def model_kwargs(cfg: TrainConfig) -> dict[str, Any]:
    return {k: v for k, v in (("width_mult", cfg.width_mult), ("dropout", cfg.dropout)) if v is not None}


def load_pretrained(cfg: TrainConfig) -> Checkpoint | None:
    """The ``--pretrained`` checkpoint (fetched first for ``torchvision``/``timm``), or None."""
    if not cfg.pretrained:
        return None
    from mobilenetv2.models import create_model
    from mobilenetv2.weights import load_checkpoint
    from mobilenetv2.weights.pretrained import SOURCES, fetch_pretrained

    path = cfg.pretrained
    if cfg.pretrained in SOURCES:
        arch = create_model(cfg.model, num_classes=1, **model_kwargs(cfg)).arch
        path = fetch_pretrained(cfg.pretrained, arch["name"], arch["args"].get("width_mult", 1.0))
    overrides = {"dropout": cfg.dropout} if cfg.dropout is not None else {}
    return load_checkpoint(path, **overrides)


def set_bn_momentum(model: nn.Module, momentum: float) -> None:
    """Give every BatchNorm layer ``momentum`` (the weight of the newest batch in the running statistics)."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = momentum


def build_model(cfg: TrainConfig, num_classes: int, pretrained: Checkpoint | None = None,
                train_loader: Any = None) -> nn.Module:
    """The model to train: the pretrained one with a new head for ``num_classes``, or freshly initialised."""
    from mobilenetv2.models import create_model

    if pretrained is None:
        return create_model(cfg.model, num_classes=num_classes, **model_kwargs(cfg))
    model = pretrained.model
    if folded_batchnorm(pretrained) and train_loader is not None:
        calibrate_folded_batchnorm(model, train_loader)
    if model.num_classes != num_classes:
        model.reset_classifier(num_classes)
    model.train()
    return model


def folded_batchnorm(ckpt: Checkpoint) -> bool:
    """TFLite weights come with BatchNorm folded (identity statistics) unless converted with --calibrate."""
    return ckpt.extra.get("source_format") == "tflite" and not ckpt.extra.get("bn_calibration_images")


def calibrate_folded_batchnorm(model: nn.Module, loader: Any, max_images: int = 128) -> None:
    """Give folded BatchNorm layers real statistics from training images, so that training mode (batch
    statistics) does not normalise away the folded scales; eval-mode outputs are unchanged."""
    from mobilenetv2.weights.tflite import calibrate_batchnorm

    batches, count = [], 0
    for images, _ in loader:
        batches.append(images)
        count += len(images)
        if count >= max_images:
            break
    used = calibrate_batchnorm(model, torch.cat(batches)[:max_images])
    if D.is_main():
        print(f"pretrained TFLite weights: BatchNorm statistics calibrated on {used} training images")


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


def autocast(device: torch.device, amp: str):
    if amp == "none":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)


class Trainer:
    """One run: holds the model, optimiser, data and logs; ``fit()`` runs the epochs."""

    def __init__(self, cfg: TrainConfig, model: nn.Module | None = None):
        from mobilenetv2.data import build_data

        self.device = D.local_device(cfg.device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise UserError(f"device {cfg.device} requested but CUDA is not available; use --device cpu or auto")
        if cfg.amp == "fp16" and self.device.type != "cuda":
            raise UserError("--amp fp16 needs CUDA; on CPU use --amp bf16")
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.distributed = D.init_distributed(self.device.type)
        if cfg.sync_bn and self.distributed and self.device.type != "cuda":
            raise UserError("--sync-bn needs CUDA (PyTorch's SyncBatchNorm does not run on CPU/gloo)")
        self.state = load_state(cfg.resume) if cfg.resume else None
        self.cfg = cfg = resolve_defaults(cfg)
        self.run_dir = Path(cfg.resume or cfg.out or default_run_dir(cfg))
        seed_everything(cfg.seed, cfg.deterministic)
        pretrained = load_pretrained(cfg) if model is None else None
        self.data = build_data(data_config(cfg, pretrained))
        self.class_names = list(self.data.class_names)
        if model is None:
            loader = self.data.train_loader if self.state is None else None  # a resumed run restores its statistics
            model = build_model(cfg, len(self.class_names), pretrained, loader)
        self.model = model
        if cfg.bn_momentum is not None:
            set_bn_momentum(self.model, cfg.bn_momentum)
        self.check_output_size()
        self.frozen = frozen_stages(self.model, cfg.freeze)
        self.head_only = frozen_stages(self.model, "all") if cfg.head_epochs else []
        if cfg.qat:
            from mobilenetv2.export.qat import prepare_qat

            self.model = prepare_qat(self.model)
        if cfg.sync_bn and self.distributed:
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.model.to(self.device, memory_format=torch.channels_last if cfg.channels_last else torch.preserve_format)
        self.steps_per_epoch = len(self.data.train_loader)
        if cfg.limit_batches:
            self.steps_per_epoch = min(self.steps_per_epoch, cfg.limit_batches)
        self.optimizer = build_optimizer(self.model, cfg)
        self.scheduler = build_scheduler(self.optimizer, self.steps_per_epoch, cfg)
        self.scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp == "fp16")
        self.ema = None
        if cfg.ema:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            self.ema = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
        weights = self.data.class_weights.to(self.device) if self.data.class_weights is not None else None
        self.criterion = nn.CrossEntropyLoss(weight=weights, label_smoothing=cfg.label_smoothing)
        self.history: list[dict] = []
        self.start_epoch, self.best_metric, self.best_epoch, self.bad_epochs = 0, -1.0, -1, 0
        if self.state is not None:
            self.restore(self.state)
        self.ddp_model: nn.Module = self.model
        self.phase = ""

    def check_output_size(self) -> None:
        out = getattr(self.model, "num_classes", None)
        if out is None:
            last = [m for m in self.model.modules() if isinstance(m, nn.Linear)]
            out = last[-1].out_features if last else None
        if out is not None and out != len(self.class_names):
            raise UserError(f"the model has {out} outputs but the data has {len(self.class_names)} classes")

    # -- state -----------------------------------------------------------------------------------------------------
    def resume_state(self, epoch: int) -> dict[str, Any]:
        return {
            "model": unwrap(self.model).state_dict(), "optimizer": self.optimizer.state_dict(),
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
        if D.is_main() and self.cfg.head_epochs:
            what = "classifier only" if phase == "head" else "whole model" + (f" (frozen up to {self.cfg.freeze})"
                                                                               if self.cfg.freeze else "")
            print(f"epoch {epoch + 1}: training the {what}", file=sys.stderr)

    def frozen_now(self) -> list[nn.Module]:
        return self.frozen + (self.head_only if self.phase == "head" else [])

    # -- one epoch -----------------------------------------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> dict[str, float]:
        from tqdm import tqdm

        cfg = self.cfg
        self.ddp_model.train()
        keep_frozen_bn(self.frozen_now())
        self.data.set_epoch(epoch)
        total = self.steps_per_epoch * cfg.batch_size
        bar = tqdm(total=total, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="img", unit_scale=True, leave=False,
                   disable=not (cfg.progress and D.is_main()), file=sys.stderr, dynamic_ncols=True)
        loss_sum = correct = seen = 0.0
        for step, (images, labels) in enumerate(self.data.train_loader):
            if step >= self.steps_per_epoch:
                break
            hard = labels
            if self.data.batch_transform is not None:
                images, labels = self.data.batch_transform(images, labels)
            loss, logits = self.train_step(images, labels)
            n = images.shape[0]
            loss_sum += loss * n
            seen += n
            if hard.ndim == 1:
                correct += (logits.argmax(1).cpu() == hard).sum().item()
            bar.update(n)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", lr=f"{self.optimizer.param_groups[0]['lr']:.2g}")
        bar.close()
        loss_sum, correct, seen = D.all_reduce_sum([loss_sum, correct, seen], self.device)
        return {"train_loss": loss_sum / max(seen, 1), "train_acc": correct / max(seen, 1), "train_images": int(seen)}

    def train_step(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[float, torch.Tensor]:
        cfg = self.cfg
        memory_format = torch.channels_last if cfg.channels_last else torch.preserve_format
        images = images.to(self.device, non_blocking=True, memory_format=memory_format)
        labels = labels.to(self.device, non_blocking=True)
        with autocast(self.device, cfg.amp):
            logits = self.ddp_model(images)
            loss = self.criterion(logits.float(), labels)
        if not torch.isfinite(loss):
            raise UserError(f"the loss became {loss.item()} (diverged); lower --lr (now {cfg.lr}) or use --clip-grad")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if cfg.clip_grad:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        return loss.item(), logits.detach()

    def eval_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.model

    @torch.no_grad()
    def predict(self, model: nn.Module, loader) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, targets) over ``loader``."""
        model.eval()
        memory_format = torch.channels_last if self.cfg.channels_last else torch.preserve_format
        outputs, targets = [], []
        for images, labels in loader:
            with autocast(self.device, self.cfg.amp):
                outputs.append(model(images.to(self.device, memory_format=memory_format)).float().cpu())
            targets.append(labels)
        return torch.cat(outputs), torch.cat(targets)

    def validate(self) -> dict[str, float]:
        logits, targets = self.predict(self.eval_model(), self.data.val_loader)
        loss = nn.functional.cross_entropy(logits, targets, reduction="sum").item()
        correct = (logits.argmax(1) == targets).sum().item()
        loss, correct, n = D.all_reduce_sum([loss, correct, len(targets)], self.device)
        return {"val_loss": loss / max(n, 1), "val_acc": correct / max(n, 1)}

    # -- saving ----------------------------------------------------------------------------------------------------------
    def save_weights(self, path: Path, metrics: dict) -> None:
        """Our checkpoint format (a plain safetensors state dict for models from elsewhere), atomically."""
        model = self.eval_model()
        if self.cfg.qat:
            from mobilenetv2.export.qat import finalize_qat

            model = finalize_qat(copy.deepcopy(model))
        if hasattr(model, "arch"):
            from mobilenetv2.weights import save_checkpoint

            save_checkpoint(path, model, self.class_names, self.data.preprocessing, metrics,
                            extra={"config": self.cfg.to_dict()})
        else:
            from safetensors.torch import save_file

            from mobilenetv2.io import atomic_path

            tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
            with atomic_path(path) as tmp:
                save_file(tensors, str(tmp))

    def end_epoch(self, epoch: int, metrics: dict) -> bool:
        """Save checkpoints, state and logs (main process); True when early stopping says stop."""
        improved = metrics["val_acc"] > self.best_metric
        if improved:
            self.best_metric, self.best_epoch, self.bad_epochs = metrics["val_acc"], epoch, 0
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
            print(f"epoch {epoch + 1}/{self.cfg.epochs}  train_loss {metrics['train_loss']:.4f}  "
                  f"val_loss {metrics['val_loss']:.4f}  val_acc {100 * metrics['val_acc']:.2f}%  "
                  f"lr {metrics['lr']:.3g}  {metrics['images_per_s']:.0f} img/s  {metrics['time_s']:.1f}s"
                  + ("  *best" if improved else ""), flush=True)
        D.barrier()
        return bool(self.cfg.early_stop) and self.bad_epochs >= self.cfg.early_stop

    # -- the run ---------------------------------------------------------------------------------------------------------
    def fit(self, on_epoch_end: Callable[[int, dict], None] | None = None) -> TrainResult:
        cfg = self.cfg
        if D.is_main():
            self.run_dir.mkdir(parents=True, exist_ok=True)
            cfg.to_yaml(self.run_dir / "config.yaml")
            self.tb = TensorBoard(self.run_dir / "tb")
            n_train = len(self.data.train_loader.dataset)
            print(f"training {type(unwrap(self.model)).__name__} on {cfg.data} ({len(self.class_names)} classes, "
                  f"{n_train} training images, {cfg.input_size}px) on {self.device}"
                  + (f" x{D.world_size()} processes" if self.distributed else "") + f"; run folder {self.run_dir}",
                  flush=True)
        try:
            for epoch in range(self.start_epoch, cfg.epochs):
                self.set_phase(epoch)
                start = time.perf_counter()
                lr = self.optimizer.param_groups[-1]["lr"]
                metrics: dict[str, Any] = {"epoch": epoch + 1, **self.train_epoch(epoch)}
                elapsed = time.perf_counter() - start
                metrics.update(self.validate())
                metrics.update(lr=lr, time_s=round(time.perf_counter() - start, 3),
                               images_per_s=metrics["train_images"] * D.world_size() / max(elapsed, 1e-9))
                stop = self.end_epoch(epoch, metrics)
                if on_epoch_end is not None:
                    on_epoch_end(epoch, metrics)
                if stop:
                    if D.is_main():
                        print(f"early stop: no better val accuracy for {cfg.early_stop} epochs", flush=True)
                    break
            final = self.final_report()
        finally:
            if D.is_main():
                self.tb.close()
        return TrainResult(self.run_dir, self.run_dir / "best.safetensors", self.best_metric, self.history, final)

    def final_report(self) -> dict:
        """Evaluate the best weights on the validation set (main process) and write run_dir/eval and curves.png."""
        if not D.is_main():
            D.barrier()
            return {}
        from mobilenetv2.evaluation import evaluate_predictions
        from mobilenetv2.weights import load_checkpoint

        best = self.run_dir / "best.safetensors"
        model = self.eval_model()
        if self.history and not self.cfg.qat and hasattr(model, "arch"):
            model = load_checkpoint(best).model.to(self.device)
        loader = self.data.val_loader
        if self.distributed:  # the val loader holds this process's shard only
            from mobilenetv2.data import build_eval_loader

            loader, _ = build_eval_loader(self.cfg.data, self.data.preprocessing, "val", self.cfg.batch_size, 0,
                                          self.cfg.val_split, self.cfg.seed, self.cfg.data_root)
        logits, targets = self.predict(model, loader)
        report = evaluate_predictions(targets, logits, self.class_names)
        report.write(self.run_dir / "eval")
        if self.history:
            plot_curves(self.run_dir / "curves.png", self.history)
        final = report.to_dict()
        top1 = final.get("top1", (logits.argmax(1) == targets).float().mean().item())
        print(f"best epoch {self.best_epoch + 1}: val top-1 {100 * top1:.2f}%; report in {self.run_dir / 'eval'}, "
              f"weights {best}", flush=True)
        D.barrier()
        return final


def train(cfg: TrainConfig, *, model: nn.Module | None = None,
          on_epoch_end: Callable[[int, dict], None] | None = None) -> TrainResult:
    """Train (or fine-tune) a classifier as ``cfg`` says; see ``TrainConfig`` for every option."""
    return Trainer(cfg, model).fit(on_epoch_end)
