"""The ``mobilenetv2 quantize`` workflow: export fp32, quantize to int8 (ONNX or ExecuTorch), compare side by side."""

from __future__ import annotations

import glob
import math
import os
import statistics
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mobilenetv2.errors import UserError
from mobilenetv2.io import atomic_path
from mobilenetv2.tasks import get_task

MAX_DROP_POINTS = 1.0
RUNTIMES = {"onnxruntime": "onnx", "executorch": "pte"}  # runtime -> the file format it runs
# a task's monitor (less "val_") -> how the report names it
METRIC_NAMES = {"acc": "top-1", "miou": "mIoU", "map": "mAP@[.5:.95]"}
CALIB_BATCH_PIXELS = 16 * 224 * 224  # calibration batches of 16 images at 224 px, fewer at larger sizes: onnxruntime's
# calibration session holds every activation of a batch (about 0.7 GB per 513x513 image for DeepLabv3 1.0)


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
    runtime: str
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

        fmt = RUNTIMES[self.runtime]

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
        method = "another --method (percentile, entropy), " if self.runtime == "onnxruntime" else ""
        return (f"{summary}\nwarning: the drop exceeds {MAX_DROP_POINTS:g} point; try more calibration images "
                f"(--num-calib), {method}or quantization-aware training "
                f"(`mobilenetv2 train --qat`, then quantize the result)")


def _split(data: str | None, wanted: str) -> str:
    """``wanted`` for data with train/ and val/ folders (or a CSV/dataset name); every image of a plain class folder."""
    return "all" if data and Path(data).is_dir() and not (Path(data) / wanted).is_dir() else wanted


def predict_logits(backend, loader) -> tuple[np.ndarray, np.ndarray]:
    logits, targets = [], []
    for images, labels in loader:
        if len(images):
            logits.append(backend(images.numpy()))
            targets.append(labels.numpy())
    if not logits:
        raise UserError("no usable validation images")
    return np.concatenate(logits), np.concatenate(targets)


def is_labelled(calib: list[str]) -> bool:
    """True for one labelled data spec (a folder of class sub-folders or with train/ and val/, a CSV, ``digits``, a
    dataset name); False for photos: image files, globs, or a folder with images directly inside."""
    from mobilenetv2.data.images import is_image_file

    if len(calib) != 1 or glob.has_magic(calib[0]):
        return False
    path = Path(calib[0])
    if path.is_file():
        return path.suffix.lower() == ".csv"
    if path.is_dir():
        entries = list(path.iterdir())
        return any(e.is_dir() for e in entries) and not any(e.is_file() and is_image_file(e) for e in entries)
    return True  # digits or a dataset name; resolve_source names what is wrong otherwise


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


def _check_options(runtime: str, method: str | None, quant_format: str, reduce_range: bool) -> str:
    """The calibration method's name; an error for options the chosen runtime does not have."""
    if runtime not in RUNTIMES:
        raise UserError(f"unknown runtime {runtime!r}; allowed: {', '.join(RUNTIMES)}")
    if runtime == "onnxruntime":
        return method or "minmax"
    given = [flag for flag, used in [("--method", method), ("--format", quant_format != "qdq"),
                                     ("--reduce-range", reduce_range)] if used]
    if given:
        raise UserError(f"{', '.join(given)} apply to --runtime onnxruntime only; ExecuTorch's XNNPACK quantizer "
                        f"calibrates with a histogram observer (allowed with executorch: --num-calib, --per-tensor)")
    return "histogram"


def _int8_pair(runtime: str, model, meta, fp32_path: Path, int8_path: Path, batches: list[np.ndarray], *, method: str,
               quant_format: str, per_channel: bool, reduce_range: bool, threads: int):
    """Write the fp32 and int8 files of ``runtime`` and return their loaded backends."""
    if runtime == "onnxruntime":
        from mobilenetv2.export.exporter import export_model
        from mobilenetv2.export.quantize import quantize_onnx
        from mobilenetv2.export.runtime import OnnxBackend

        export_model(model, fp32_path, "onnx", meta=meta)
        quantize_onnx(fp32_path, int8_path, batches, method=method, quant_format=quant_format,
                      per_channel=per_channel, reduce_range=reduce_range)
        # no spinning: one session's idle threads would steal the cores from the other one timed beside it
        return OnnxBackend(fp32_path, threads, spin=False), OnnxBackend(int8_path, threads, spin=False)
    from mobilenetv2.export.executorch import ExecuTorchBackend, export_executorch, quantize_executorch

    export_executorch(model, fp32_path, input_size=meta.input_size)
    quantize_executorch(model, int8_path, batches, per_channel=per_channel, input_size=meta.input_size)
    return ExecuTorchBackend(fp32_path, threads), ExecuTorchBackend(int8_path, threads)


def default_quantized_output(checkpoint: str | os.PathLike[str], runtime: str = "onnxruntime") -> Path:
    """``NAME.int8.onnx`` (or ``.pte``) beside the checkpoint, or ``model.int8.onnx`` inside a run folder."""
    checkpoint, suffix = Path(checkpoint), f".int8.{RUNTIMES.get(runtime, 'onnx')}"
    return checkpoint / f"model{suffix}" if checkpoint.is_dir() else checkpoint.with_suffix(suffix)


class OutputComparison:
    """int8 against fp32, batch by batch (no outputs kept: 128 DeepLab logits at 513x513 are 2.8 GB): agreement of the
    argmax over the classes (axis 1: per image for [N, C] logits, per pixel for [N, C, H, W]) and the max/mean
    absolute logit difference."""

    def __init__(self, task=None) -> None:
        self.images = self.same = self.predictions = self.values = 0
        self.max_diff = self.sum_diff = 0.0
        self.task, self.unit = task, "images"

    def update(self, fp32: np.ndarray, int8: np.ndarray) -> None:
        diff = np.abs(fp32 - int8)
        if self.task is not None:  # the task knows where its classes are (detection: the last axis, after the boxes)
            (fp32_scores, self.unit), (int8_scores, _) = self.task.class_scores(fp32), self.task.class_scores(int8)
        else:
            fp32_scores, int8_scores, self.unit = fp32, int8, "pixels" if fp32.ndim > 2 else "images"
        same = fp32_scores.argmax(1) == int8_scores.argmax(1)
        self.images += len(fp32)
        self.same, self.predictions = self.same + int(same.sum()), self.predictions + same.size
        self.values, self.sum_diff = self.values + diff.size, self.sum_diff + float(diff.sum(dtype=np.float64))
        self.max_diff = max(self.max_diff, float(diff.max(initial=0.0)))

    def result(self) -> dict[str, float | str]:
        return {"agreement": self.same / max(self.predictions, 1), "max_logit_diff": self.max_diff,
                "mean_logit_diff": self.sum_diff / max(self.values, 1),
                "agreement_unit": self.unit}


def compare_outputs(fp32: np.ndarray, int8: np.ndarray) -> dict[str, float | str]:
    """Agreement of the argmax over classes (per image, or per pixel for [N, C, H, W] outputs) and the max/mean
    absolute logit difference of int8 against fp32."""
    comparison = OutputComparison()
    comparison.update(fp32, int8)
    return comparison.result()


def calibration_batch_size(input_size: int) -> int:
    """16 images a batch at 224 px and below, fewer above (3 at 513): a batch's activations bound the memory."""
    return max(1, min(16, CALIB_BATCH_PIXELS // (input_size * input_size)))


def _calibration(calib: list[str], labelled: bool, val: str | None, pre, num_calib: int) -> list[np.ndarray]:
    from mobilenetv2.export.quantize import calibration_batches, image_batches

    batch_size = calibration_batch_size(pre.input_size)
    if not labelled:
        return image_batches(calib, pre, num_calib, batch_size=batch_size)
    # Without --val, calibration draws from the training split only, so the two never share an image.
    return calibration_batches(calib[0], pre, num_calib, batch_size=batch_size,
                               split="train" if val is None else _split(calib[0], "train"))


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
        raise UserError(f"validation data {data}: {exc}") from None
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
        raise UserError(f"validation data {data}: {exc}") from None
    return loader


def task_figures(task, backends: list, loader) -> tuple[list[float], dict[str, float | str], int]:
    """Each backend's validation figure (the task's ``monitor``, from its meter: mIoU for segmentation) over the
    labelled ``loader``, the comparison of the first two backends' outputs on the same images, and the image count."""
    import torch

    meters, comparison = [task.meter() for _ in backends], OutputComparison(task)
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
        return _val_loader(ckpt, val, _split(val, "val")), is_labelled(calib), ""
    if not is_labelled(calib):
        return None, False, "no labelled --val given"
    loader = _val_loader(ckpt, calib[0], "val", strict=False)
    if loader is None:  # labelled, but not with the checkpoint's classes: its images still calibrate
        return None, False, "the classes of --calib are not the checkpoint's and no labelled --val was given"
    return loader, True, ""


def quantize_checkpoint(checkpoint: str | os.PathLike[str], out: str | os.PathLike[str], calib: str | list[str], *,
                        val: str | None = None, num_calib: int = 128, method: str | None = None,
                        quant_format: str = "qdq", per_channel: bool = True, reduce_range: bool = False,
                        threads: int = 2, speed_rounds: int = 20, runtime: str = "onnxruntime") -> QuantizeReport:
    """Quantize ``checkpoint`` to an int8 file at ``out``; report fp32 vs int8 sizes, speed, agreement and (with
    labelled validation data) accuracy.

    ``calib``: labelled data (its validation split is used when ``val`` is None) or unlabelled photos (files,
    folders, globs). Tasks without ``labelled_quantize_check`` (segmentation) calibrate on photos and are measured on
    a labelled ``val`` by their own meter (mIoU); agreement is counted per pixel for [N, C, H, W] outputs, streamed
    batch by batch. ``runtime="onnxruntime"`` writes a QDQ ONNX model; ``"executorch"`` an XNNPACK ``.pte``
    program with its metadata JSON beside it.
    """
    from mobilenetv2.hardware import describe
    from mobilenetv2.weights import load_checkpoint

    calib = [calib] if isinstance(calib, str) else list(calib)
    method = _check_options(runtime, method, quant_format, reduce_range)
    ckpt = load_checkpoint(checkpoint)
    task = get_task(ckpt.task)
    val_loader, labelled, no_accuracy = _evaluation(ckpt, calib, val)
    by_meter = val_loader is not None and not task.labelled_quantize_check  # the task's figure via its meter
    batches = _calibration(calib, labelled, val, ckpt.preprocessing, num_calib)
    with tempfile.TemporaryDirectory(prefix="mobilenetv2-quant-") as tmp:
        fp32_path = Path(tmp) / f"fp32.{RUNTIMES[runtime]}"
        with atomic_path(out) as int8_path:
            fp32, int8 = _int8_pair(runtime, ckpt.model, ckpt.meta, fp32_path, int8_path, batches, method=method,
                                    quant_format=quant_format, per_channel=per_channel, reduce_range=reduce_range,
                                    threads=threads)
            top1: tuple[float | None, float | None] = (None, None)
            if by_meter:
                (fp32_figure, int8_figure), comparison, compared = task_figures(task, [fp32, int8], val_loader)
                top1 = (fp32_figure, int8_figure)
            elif val_loader is not None:
                fp32_logits, targets = predict_logits(fp32, val_loader)
                int8_logits, _ = predict_logits(int8, val_loader)
                comparison, compared = compare_outputs(fp32_logits, int8_logits), len(targets)
                top1 = (float((fp32_logits.argmax(1) == targets).mean()), float((int8_logits.argmax(1) == targets).mean()))
            else:
                outputs = OutputComparison(task)
                for b in batches:
                    outputs.update(fp32(b), int8(b))
                comparison, compared = outputs.result(), outputs.images
            speed = time_speedup(fp32, int8, np.ascontiguousarray(batches[0][:1]), speed_rounds)
            fp32_mb, int8_mb = fp32_path.stat().st_size / 1e6, int8_path.stat().st_size / 1e6
    if runtime == "executorch":  # .pte has no metadata field: class names and preprocessing go beside it
        from mobilenetv2.export.executorch import sidecar_path
        from mobilenetv2.export.exporter import metadata_json
        from mobilenetv2.io import atomic_write_text

        atomic_write_text(sidecar_path(out), metadata_json(ckpt.meta))
    metric = task.monitor.removeprefix("val_")  # classification: "acc", the top-1 computed above
    return QuantizeReport(
        out=str(out), runtime=runtime, method=method, calibration_images=sum(len(b) for b in batches),
        val_images=0 if val_loader is None else compared,
        compared_on="calibration" if val_loader is None else "validation", compared_images=compared,
        fp32_top1=top1[0], int8_top1=top1[1], **comparison, fp32_mb=fp32_mb,
        int8_mb=int8_mb, fp32_ms=speed.fp32_ms, int8_ms=speed.int8_ms, speedup=speed.speedup,
        speedup_p10=speed.speedup_p10, speedup_p90=speed.speedup_p90, speed_rounds=speed.rounds, threads=threads,
        no_accuracy=no_accuracy, cpu=describe(), metric=METRIC_NAMES.get(metric, metric))
