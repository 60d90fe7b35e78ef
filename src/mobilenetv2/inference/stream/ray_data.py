"""Prediction beyond one machine on Ray Data: the image files are read as a Ray dataset (``read_binary_files``),
``map_batches`` runs them through an actor pool of predictors (each actor opens the model once, on any backend,
and decodes, resizes and predicts exactly as ``predict`` does on one machine), and the results stream back to the
driver, which writes the same files as ``predict`` (JSONL ledger, CSV, Parquet, stdout) and resumes the same way.

    ray.init(address="auto")            # on a node of the cluster; none: a Ray instance on this machine
    predict_on_ray("model.onnx", open_sources(["photos/"]), Outputs(out=Path("preds")))

Every node needs ``pip install 'mobilenetv2[ray]'`` and the images at the same paths (a shared file system) or on
an object store Ray reads (``s3://bucket/photos/``, ``gs://...``); the model file is shipped through Ray's object store.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mobilenetv2.data.images import BadImageError
from mobilenetv2.errors import UserError
from mobilenetv2.extras import require
from mobilenetv2.inference.stream.frames import Failure, Frame, Result
from mobilenetv2.inference.stream.progress import Progress
from mobilenetv2.inference.stream.resume import LEDGER, Done, check_settings
from mobilenetv2.inference.stream.run import Outputs, RunReport, build_sinks, log, write_batch
from mobilenetv2.inference.stream.sources import ImageFiles, Source
from mobilenetv2.inference.stream.sources.files import is_remote
from mobilenetv2.tasks import Presenter


@dataclass
class Shipped:
    """A prediction as it comes back from an actor: its JSON record, CSV rows and table row."""

    record: dict[str, Any]
    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    source: str | None = None
    files: dict[str, str] = field(default_factory=dict)  # the presenter's files (suffix -> base64 PNG): masks

    def to_json(self) -> dict[str, Any]:
        return self.record


class ShippedPresenter(Presenter):
    """What the driver's sinks ask of the task's presenter, answered from what the actors computed."""

    def draw(self, image: Image.Image, prediction: Shipped) -> Image.Image:
        raise UserError("--ray writes predictions, not pictures: drop --draw, or run without --ray")

    def files(self, prediction: Shipped) -> dict[str, Image.Image]:
        return {suffix: Image.open(io.BytesIO(base64.b64decode(png))) for suffix, png in prediction.files.items()}

    def rows(self, prediction: Shipped) -> list[dict[str, Any]]:
        return prediction.rows

    def summary(self, prediction: Shipped) -> dict[str, Any]:
        return prediction.summary


class BatchPredictor:
    """A Ray actor: opens the model once, then batches of {path, bytes} -> {image, record, rows, summary, files, error}."""

    def __init__(self, model: dict[str, bytes], name: str, backend: str | None, threads: int | None,
                 options: dict[str, Any], labels: str | None = None) -> None:
        from mobilenetv2.inference import load_predictor

        self.folder = tempfile.TemporaryDirectory(prefix="mobilenetv2-ray-")
        for file_name, data in model.items():
            Path(self.folder.name, file_name).write_bytes(data)
        self.predictor = load_predictor(Path(self.folder.name, name), backend=backend, threads=threads, spin=False,
                                        labels=str(Path(self.folder.name, labels)) if labels else None)
        self.predictor.configure(**options)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from mobilenetv2.inference.batching import forward_parts
        from mobilenetv2.inference.stream.decode import model_inputs, read_picture

        p, prepared, errors = self.predictor, [], {}
        for i, (path, data) in enumerate(zip(batch["path"], batch["bytes"])):
            try:
                picture, full = read_picture(bytes(data), str(path), p.decode_size)
            except BadImageError as exc:
                errors[i] = str(exc)
                continue
            prepared.append((i, *model_inputs(p, picture, full)))
        outputs = forward_parts(p.logits, [x for _, x, _ in prepared])
        records, rows, summaries, files = ([""] * len(batch["path"]) for _ in range(4))
        for (i, _, state), own in zip(prepared, outputs):
            prediction = p.finish(own, state)
            prediction.source = str(batch["path"][i])
            records[i] = json.dumps(prediction.to_json())
            rows[i] = json.dumps(p.presenter.rows(prediction))
            summaries[i] = json.dumps(p.presenter.summary(prediction))
            files[i] = json.dumps({suffix: png_base64(picture) for suffix, picture in p.presenter.files(prediction).items()})
        error = [errors.get(i, "") for i in range(len(batch["path"]))]
        return {"image": np.asarray([str(x) for x in batch["path"]]), "record": np.asarray(records),
                "rows": np.asarray(rows), "summary": np.asarray(summaries), "files": np.asarray(files),
                "error": np.asarray(error)}


def png_base64(picture: Image.Image) -> str:
    """A picture as PNG bytes in base64, to travel in a JSON string."""
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def model_files(model: str | os.PathLike[str]) -> tuple[dict[str, bytes], str]:
    """The model file (a run folder's checkpoint) and what travels with it (an IR's .bin, a .pte's or .tflite's
    metadata JSON), as bytes to ship to the actors."""
    from mobilenetv2.formats import entry_of, get_format
    from mobilenetv2.weights.checkpoint import resolve_checkpoint_path

    path = Path(model)
    entry = entry_of(path)
    if entry.folder:
        raise UserError(f"--ray ships the model's files to the workers, and {path.name} is a folder "
                        f"({entry.title}): give --ray a single-file format (.onnx, .xml, .tflite, .pte, a checkpoint)")
    path = resolve_checkpoint_path(path) if path.is_dir() else path
    files = {p.name: p.read_bytes() for p in get_format(entry.name).outputs(path) if p.is_file()}
    return files, path.name


def image_paths(sources: list[Source], done: Done) -> tuple[list[str], int]:
    """The files to predict: local files, folders, globs and list files expanded (those done skipped: their count comes
    second); object-store URIs (s3://...) as they are, for Ray to list."""
    paths: list[str] = []
    skipped = 0
    for source in sources:
        if not isinstance(source, ImageFiles):
            raise UserError(f"--ray predicts image files; predict {source.name} without --ray")
        paths += [item for item in source.items if is_remote(item)]
        for path in map(str, source.paths()):
            if path in done:
                skipped += 1
            else:
                paths.append(path)
    return paths, skipped


def connect(address: str | None) -> Any:
    """Ray, connected to the cluster at ``address`` ("auto" or HOST:PORT, from a node of the cluster; None: the Ray
    instance running on this machine, else a new one; "local": always a new one), unless the caller has initialised
    it already; Ray Data's own progress lines are left to our progress."""
    ray = require("ray", "ray")
    if not ray.is_initialized():
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = "a Ray instance on this machine" if address in (None, "local") else f"the Ray cluster at {address}"
            raise UserError(f"cannot connect to {where}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") \
                from exc
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.execution_options.preserve_order = True  # results in input order, as on one machine
    return ray


def predict_on_ray(model: str | os.PathLike[str], sources: list[Source], outputs: Outputs, *, address: str | None = None,
                   actors: int | None = None, batch_size: int = 32, backend: str | None = None,
                   threads: int | None = None, options: dict[str, Any] | None = None,
                   labels: str | os.PathLike[str] | None = None) -> RunReport:
    """Predict image files on a Ray cluster (``address``; None or "local": a Ray instance on this machine, or the one
    already initialised), an actor pool of ``actors`` predictors each on ``threads`` CPU threads; the results go to the
    same files as ``predict`` (``outputs``) and a rerun resumes. ``labels``: a class-name file shipped with the model."""
    if address and address.startswith("ray://"):  # Ray Data's executor needs a driver on a node of the cluster
        raise UserError(f"--ray {address}: Ray Data does not run through Ray Client (ray://); run predict on a node of "
                        "the cluster with --ray auto (over ssh, or as a Ray job)")
    if outputs.draw:
        raise UserError("--ray writes predictions, not pictures: drop --draw, or run without --ray")
    done = Done()
    if outputs.out is not None:
        check_settings(outputs.out, outputs.settings, outputs.overwrite)
        done = Done.of_ledger(outputs.out / LEDGER)
    paths, skipped = image_paths(sources, done)
    if skipped:
        log.info("resuming: %s of %s done (%s)", f"{skipped:,}", f"{skipped + len(paths):,}", outputs.out / LEDGER)
    report = RunReport(skipped=skipped)
    if not paths:
        return report
    ray = connect(address)
    files, name = model_files(model)
    labels_name = None
    if labels is not None:
        labels_name = "labels-" + Path(labels).name
        files[labels_name] = Path(labels).read_bytes()
    threads = threads or 1
    actors = actors or max(1, int(ray.cluster_resources().get("CPU", 1) // threads))
    # reading is I/O: it takes no CPU slot, so that a pool using every CPU still gets its images
    dataset = ray.data.read_binary_files(paths, include_paths=True, num_cpus=0).map_batches(
        BatchPredictor, fn_constructor_kwargs={"model": files, "name": name, "backend": backend, "threads": threads,
                                               "options": dict(options or {}), "labels": labels_name},
        batch_size=batch_size, concurrency=actors, num_cpus=threads, batch_format="numpy")
    sinks = build_sinks(ShippedPresenter(), "shipped", sources, outputs, done, 1)
    progress = Progress(len(paths), "images", outputs.log_interval)
    given = {os.path.abspath(p): p for p in paths if not is_remote(p)}  # Ray gives absolute paths
    try:
        for batch in dataset.iter_batches(batch_size=batch_size, batch_format="numpy"):
            items = shipped_items(batch, given, skipped + progress.done + progress.failed)
            write_batch(items, sinks, progress, report)
    finally:
        for sink in sinks:
            sink.close()
    report.done, report.failed = progress.done, progress.failed
    log.log(logging.WARNING if progress.failed else logging.INFO, "predict on Ray (%d actors): %s", actors,
            progress.close())
    return report


def shipped_items(batch: dict[str, np.ndarray], given: dict[str, str], first: int = 0) -> list[Result | Failure]:
    """A batch of the actors' answers as the pipeline's items, named by the paths as the user gave them; ``first``: the
    place among the inputs of the batch's first image (its files are named NNNN_stem by it)."""
    items: list[Result | Failure] = []
    for ordinal, (image, record, rows, summary, files, error) in enumerate(zip(
            batch["image"], batch["record"], batch["rows"], batch["summary"], batch["files"], batch["error"]), first):
        image = given.get(str(image), str(image))
        if error:
            items.append(Failure(image, str(error), key=image))
            continue
        record, rows, summary = json.loads(record), json.loads(rows), json.loads(summary)
        record["image"] = image
        for row in rows:
            row["image"] = image
        summary["image"] = image
        shipped = Shipped(record, rows, summary, image, json.loads(files))
        items.append(Result(Frame(key=image, source=image, ordinal=ordinal), shipped))
    return items
