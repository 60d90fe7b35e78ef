"""The ``mobilenetv2 quantize`` workflow: export fp32 and int8 in a format of the registry (ONNX, ExecuTorch, ...),
and compare them side by side (accuracy, agreement, size, speed)."""

from __future__ import annotations

import math
import os
import statistics
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mobilenetv2.errors import UserError
from mobilenetv2.export.calibration import calibration, calibration_batch_size, is_labelled, split_of
from mobilenetv2.formats import FORMATS, format_for_output, get_format, list_formats
from mobilenetv2.formats.base import QuantizeOptions
from mobilenetv2.formats.verify import OutputComparison
from mobilenetv2.io import atomic_files
from mobilenetv2.tasks import get_task

MAX_DROP_POINTS = 1.0
# a task's monitor (less "val_") -> how the report names it
METRIC_NAMES = {"acc": "top-1", "miou": "mIoU", "map": "mAP@[.5:.95]"}


@dataclass
class Speed:
    """fp32 vs int8 batch-1 latency timed interleaved: medians and the spread of the per-round speed-up."""

    fp32_ms: float
    int8_ms: float
    speedup: float          # median over rounds of fp32 time / int8 time within the same round
    speedup_p10: float
    speedup_p90: float
    rounds: int


@dataclass
class QuantizeReport:
    """fp32 vs int8 (ONNX or ExecuTorch): accuracy on labelled validation images when given, agreement and logit
    differences on the compared images, sizes and batch-1 latency."""

    out: str
    format: str              # the file format written (onnx, pte, ...)
    backend: str             # the backend both files were run on
    method: str
    calibration_images: int
    val_images: int          # labelled validation images (0: no accuracy measured)
    compared_on: str         # "validation" or "calibration" images: where agreement and logit differences come from
    compared_images: int
    fp32_top1: float | None  # the task's figure on labelled validation data (`metric`: top-1, or mIoU), None: none
    int8_top1: float | None
    agreement: float         # fraction of compared images (pixels, for dense outputs) where fp32 and int8 agree
    max_logit_diff: float
    mean_logit_diff: float
    fp32_mb: float
    int8_mb: float
    fp32_ms: float
    int8_ms: float
    speedup: float
    speedup_p10: float
    speedup_p90: float
    speed_rounds: int
    threads: int
    no_accuracy: str = ""    # why no accuracy was measured ("" when it was)
    cpu: str = ""
    agreement_unit: str = "images"  # "pixels" for segmentation: agreement is counted per pixel
    metric: str = "top-1"    # what fp32_top1/int8_top1 measure: top-1 for classifiers, the task's figure otherwise

    @property
    def drop_points(self) -> float | None:
        return None if self.fp32_top1 is None or self.int8_top1 is None else (self.fp32_top1 - self.int8_top1) * 100

    def to_dict(self) -> dict:
        drop = self.drop_points
        return {**asdict(self), "drop_points": None if drop is None else round(drop, 3)}

    def table(self) -> str:
        from mobilenetv2.reporting import format_table

        fmt = self.format

        def top1(value: float | None) -> str:
            return "-" if value is None else f"{value:.2%}"

        return format_table(
            ["model", self.metric, "size (MB)", f"batch-1 latency (ms, median, {self.threads} threads)"],
            [[f"{fmt} fp32", top1(self.fp32_top1), f"{self.fp32_mb:.2f}", f"{self.fp32_ms:.2f}"],
             [f"{fmt} int8 ({self.method})", top1(self.int8_top1), f"{self.int8_mb:.2f}", f"{self.int8_ms:.2f}"]])

    def verdict(self) -> str:
        speed = (f"{self.speedup:.2f}x faster (median of {self.speed_rounds} interleaved rounds, "
                 f"p10-p90 {self.speedup_p10:.2f}-{self.speedup_p90:.2f}x)")
        of = "" if self.agreement_unit == "images" else f"the {self.agreement_unit} of "
        agree = (f"same prediction on {self.agreement:.1%} of {of}{self.compared_images} {self.compared_on} images, "
                 f"|logit diff| max {self.max_logit_diff:.3g} mean {self.mean_logit_diff:.3g}")
        size = f"{self.fp32_mb / self.int8_mb:.1f}x smaller"
        drop = self.drop_points
        if drop is None:
            return (f"int8 vs fp32: {agree}; {size}, {speed}\nno accuracy measured: {self.no_accuracy} "
                    f"(agreement on the calibration images themselves is an optimistic check)")
        summary = f"int8 vs fp32 on {self.val_images} validation images: {self.metric} drop {drop:+.2f} points, " \
                  f"{agree}; {size}, {speed}"
        if drop <= MAX_DROP_POINTS:
            return summary
        method = "another --method (percentile, entropy), " if self.format == "onnx" else ""
        return (f"{summary}\nwarning: the drop exceeds {MAX_DROP_POINTS:g} point; try more calibration images "
                f"(--num-calib), {method}or quantization-aware training "
                f"(`mobilenetv2 train --qat`, then quantize the result)")


def predict_logits(backend, loader) -> tuple[np.ndarray, np.ndarray]:
    logits, targets = [], []
    for images, labels in loader:
        if len(images):
            logits.append(backend(images.numpy()))
            targets.append(labels.numpy())
    if not logits:
        raise UserError("no usable validation images")
    return np.concatenate(logits), np.concatenate(targets)


def default_quantized_output(checkpoint: str | os.PathLike[str], fmt: str = "onnx") -> Path:
    """``NAME.int8.onnx`` (or ``.pte``, ...) beside the checkpoint, or ``model.int8.onnx`` inside a run folder."""
    checkpoint, suffix = Path(checkpoint), ".int8" + get_format(fmt).suffix
    return checkpoint / f"model{suffix}" if checkpoint.is_dir() else checkpoint.with_suffix(suffix)


def quantized_format(out: str | os.PathLike[str] | None, fmt: str | None) -> str:
    """The format to write: ``fmt`` when given (it must agree with ``out``'s suffix), else ``out``'s, else ONNX."""
    allowed = list_formats(quantizes=True)
    if fmt is not None and fmt not in allowed:
        raise UserError(f"quantize writes {', '.join(allowed)}, not {fmt!r}")
    named = format_for_output(out, "") if out is not None else ""
    if (named and named not in allowed) or (out is not None and not named and Path(out).suffix):
        suffixes = ", ".join(FORMATS[f].suffixes[0] for f in allowed)
        raise UserError(f"--out {out}: quantize writes {', '.join(allowed)} files ({suffixes})")
    if fmt and named and fmt != named:
        raise UserError(f"--out {out} is an {named} file but --format says {fmt}")
    return fmt or named or "onnx"


def model_mb(fmt: str, path: Path) -> float:
    """The size of a model file with its companions (an OpenVINO IR's .bin), in MB."""
    return sum(p.stat().st_size for p in get_format(fmt).outputs(path) if p.is_file()) / 1e6


def time_speedup(fp32, int8, one: np.ndarray, rounds: int, round_ms: float = 10.0) -> Speed:
    """Batch-1 latency of both models, interleaved round by round (order alternating), and the per-round speed-up.

    Each round runs each model for about ``round_ms``, so that sub-millisecond models are not timed call by call.
    """
    from mobilenetv2.timing import percentile, time_interleaved

    candidates = {"fp32": lambda: fp32(one), "int8": lambda: int8(one)}
    warm = time_interleaved(candidates, rounds=1, warmup=3)
    iters = max(1, math.ceil(round_ms / max(warm["fp32"].median_ms, 1e-3)))
    fp32_ms, int8_ms = [], []
    for r in range(max(rounds, 1)):
        ordered = dict(reversed(candidates.items())) if r % 2 else candidates
        stats = time_interleaved(ordered, rounds=1, warmup=0, iters_per_round=iters)
        fp32_ms.append(stats["fp32"].median_ms)
        int8_ms.append(stats["int8"].median_ms)
    ratios = [f / i for f, i in zip(fp32_ms, int8_ms, strict=True)]
    return Speed(statistics.median(fp32_ms), statistics.median(int8_ms), statistics.median(ratios),
                 percentile(ratios, 10), percentile(ratios, 90), len(ratios))


def _val_loader(ckpt, data: str, split: str, *, strict: bool = True):
    """The labelled validation loader of ``data``; classes other than the checkpoint's are an error (None if not
    ``strict``)."""
    from mobilenetv2.data import build_eval_loader

    loader, classes = build_eval_loader(data, ckpt.preprocessing, split=split, batch_size=32, workers=0)
    try:
        get_task(ckpt.task).check_classes(ckpt.class_names, ckpt.meta.num_classes, classes)
    except UserError as exc:
        if not strict:
            return None
        raise UserError(f"validation data {data}: {exc}") from exc
    return loader


def _task_val_loader(ckpt, data: str):
    """The task's own evaluation loader over ``data`` (its default split), for tasks measured by their meter."""
    task, pre = get_task(ckpt.task), ckpt.preprocessing
    loader, names = task.eval_loader(data, pre, split=task.default_split(data, None),
                                     batch_size=calibration_batch_size(pre.input_size), workers=0, val_split=0.2, seed=0,
                                     data_root=None)
    try:
        task.check_classes(ckpt.class_names, ckpt.meta.num_classes, names)
    except UserError as exc:
        raise UserError(f"validation data {data}: {exc}") from exc
    return loader


def task_figures(task, backends: list, loader) -> tuple[list[float], dict[str, float | str], int]:
    """Each backend's validation figure (the task's ``monitor``, from its meter: mIoU for segmentation) over the
    labelled ``loader``, the comparison of the first two backends' outputs on the same images, and the image count."""
    import torch

    meters, comparison = [task.meter(backend.architecture) for backend in backends], OutputComparison(task)
    for images, targets in loader:
        if not len(images):
            continue
        outputs = [backend(images.numpy()) for backend in backends]
        for meter, out in zip(meters, outputs, strict=True):
            meter.update(torch.from_numpy(out), targets, 0.0)
        comparison.update(outputs[0], outputs[1])
    if not comparison.images:
        raise UserError("no usable validation images")
    figures = [float(m.compute("val_", torch.device("cpu"))[task.monitor]) for m in meters]
    return figures, comparison.result(), comparison.images


def _evaluation(ckpt, calib: list[str], val: str | None):
    """(validation loader or None, whether --calib is used as labelled data, why no accuracy is measured).

    Tasks without ``labelled_quantize_check`` (segmentation) calibrate on photos only, and are measured on a
    labelled ``val`` through their own loader and meter (see ``task_figures``)."""
    if not get_task(ckpt.task).labelled_quantize_check:
        if val:
            return _task_val_loader(ckpt, val), False, ""
        return None, False, "no labelled --val given"
    if val:
        return _val_loader(ckpt, val, split_of(val, "val")), is_labelled(calib), ""
    if not is_labelled(calib):
        return None, False, "no labelled --val given"
    loader = _val_loader(ckpt, calib[0], "val", strict=False)
    if loader is None:  # labelled, but not with the checkpoint's classes: its images still calibrate
        return None, False, "the classes of --calib are not the checkpoint's and no labelled --val was given"
    return loader, True, ""


def int8_pair(fmt: str, ckpt, fp32_path: Path, int8_path: Path, batches: list[np.ndarray], options: QuantizeOptions,
              threads: int):
    """Write ``fmt``'s fp32 and int8 files of the checkpoint and open both on the format's backend."""
    from mobilenetv2.backends.base import RuntimeOptions

    target, backend = get_format(fmt), FORMATS[fmt].backends[0]
    target.export(ckpt.model, fp32_path, ckpt.meta)
    target.quantize(ckpt.model, int8_path, ckpt.meta, batches, options, fp32_path=fp32_path)
    # no spinning: one session's idle threads would steal the cores from the other one timed beside it
    runtime = RuntimeOptions(threads=threads, spin=False)
    return (target.open(fp32_path, backend, runtime, meta=ckpt.meta, precision="fp32"),
            target.open(int8_path, backend, runtime, meta=ckpt.meta, precision="int8"))


def compare(task, fp32, int8, val_loader, batches: list[np.ndarray]) -> tuple[tuple[float | None, float | None], dict, int]:
    """((fp32 figure, int8 figure) or Nones, the int8-vs-fp32 comparison, images compared): on labelled validation
    data when there is some (the task's meter, or top-1), else on the calibration batches."""
    if val_loader is not None and not task.labelled_quantize_check:  # the task's figure via its meter (mIoU, mAP)
        figures, comparison, compared = task_figures(task, [fp32, int8], val_loader)
        return (figures[0], figures[1]), comparison, compared
    outputs = OutputComparison(task)
    if val_loader is not None:
        fp32_logits, targets = predict_logits(fp32, val_loader)
        int8_logits, _ = predict_logits(int8, val_loader)
        outputs.update(fp32_logits, int8_logits)
        top1 = (float((fp32_logits.argmax(1) == targets).mean()), float((int8_logits.argmax(1) == targets).mean()))
        return top1, outputs.result(), len(targets)
    for b in batches:
        outputs.update(fp32(b), int8(b))
    return (None, None), outputs.result(), outputs.images


def quantize_checkpoint(checkpoint: str | os.PathLike[str], out: str | os.PathLike[str], calib: str | list[str], *,
                        val: str | None = None, num_calib: int = 128, fmt: str | None = None,
                        options: QuantizeOptions | None = None, threads: int = 2,
                        speed_rounds: int = 20) -> QuantizeReport:
    """Quantize ``checkpoint`` to an int8 file at ``out`` (format ``fmt``, else the one ``out``'s suffix names, else
    ONNX); report fp32 vs int8 sizes, speed, agreement and (with labelled validation data) accuracy.

    ``calib``: labelled data (its validation split is used when ``val`` is None) or unlabelled photos (files,
    folders, globs). Tasks without ``labelled_quantize_check`` (segmentation, detection) calibrate on photos and are
    measured on a labelled ``val`` by their own meter (mIoU, mAP); agreement is counted where the task's classes are
    (per image, pixel or anchor), streamed batch by batch.
    """
    from mobilenetv2.hardware import describe
    from mobilenetv2.weights import load_checkpoint

    calib = [calib] if isinstance(calib, str) else list(calib)
    fmt, options = quantized_format(out, fmt), options or QuantizeOptions()
    method = get_format(fmt).quantize_method(options)
    ckpt = load_checkpoint(checkpoint)
    task = get_task(ckpt.task)
    val_loader, labelled, no_accuracy = _evaluation(ckpt, calib, val)
    batches = calibration(calib, labelled, val, ckpt.preprocessing, num_calib)
    with tempfile.TemporaryDirectory(prefix="mobilenetv2-quant-") as tmp:
        fp32_path = Path(tmp) / f"fp32{get_format(fmt).suffix}"
        with atomic_files(out, get_format(fmt).companions) as int8_path:
            fp32, int8 = int8_pair(fmt, ckpt, fp32_path, int8_path, batches, options, threads)
            top1, comparison, compared = compare(task, fp32, int8, val_loader, batches)
            speed = time_speedup(fp32, int8, np.ascontiguousarray(batches[0][:1]), speed_rounds)
            fp32_mb, int8_mb = model_mb(fmt, fp32_path), model_mb(fmt, int8_path)
    get_format(fmt).finish(Path(out), ckpt.meta, "int8")
    metric = task.monitor.removeprefix("val_")  # classification: "acc", the top-1 computed above
    return QuantizeReport(
        out=str(out), format=fmt, backend=fp32.backend, method=method, calibration_images=sum(len(b) for b in batches),
        val_images=0 if val_loader is None else compared,
        compared_on="calibration" if val_loader is None else "validation", compared_images=compared,
        fp32_top1=top1[0], int8_top1=top1[1], **comparison, fp32_mb=fp32_mb,
        int8_mb=int8_mb, fp32_ms=speed.fp32_ms, int8_ms=speed.int8_ms, speedup=speed.speedup,
        speedup_p10=speed.speedup_p10, speedup_p90=speed.speedup_p90, speed_rounds=speed.rounds, threads=threads,
        no_accuracy=no_accuracy, cpu=describe(), metric=METRIC_NAMES.get(metric, metric))
