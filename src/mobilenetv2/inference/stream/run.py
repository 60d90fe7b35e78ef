"""A whole prediction run, as ``mobilenetv2 predict`` does it: resume what the output folder holds, stream the inputs
through the pipeline, write every batch to the sinks, report progress, failures and each video's figures."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mobilenetv2.inference.stream.frames import Failure, SourceEnd
from mobilenetv2.inference.stream.pipeline import Pipeline, StreamOptions
from mobilenetv2.inference.stream.progress import Progress
from mobilenetv2.inference.stream.resume import LEDGER, Done, check_settings, key_hash
from mobilenetv2.inference.stream.sinks.base import Sink
from mobilenetv2.inference.stream.sinks.csv import CsvSink
from mobilenetv2.inference.stream.sinks.jsonl import JsonlSink
from mobilenetv2.inference.stream.sinks.parquet import ParquetSink
from mobilenetv2.inference.stream.sinks.pictures import PicturesSink
from mobilenetv2.inference.stream.sinks.stdout import StdoutSink
from mobilenetv2.inference.stream.sinks.video import VideoSink
from mobilenetv2.inference.stream.sources import ImageFiles, Source
from mobilenetv2.inference.stream.stats import describe

if TYPE_CHECKING:
    from mobilenetv2.inference.predictor import Predictor
    from mobilenetv2.tasks import Presenter

log = logging.getLogger("mobilenetv2.predict")


@dataclass
class Outputs:
    """Where predictions go: stdout in ``fmt`` (None: nothing), and with ``out`` a folder (JSONL, CSV, per-video JSONL,
    the task's files such as segmentation masks; ``draw``: pictures and annotated videos; ``parquet``); ``settings``
    are checked against the folder's."""

    fmt: str | None = "table"
    out: Path | None = None
    draw: bool = False
    parquet: bool = False
    overwrite: bool = False
    settings: dict[str, Any] = field(default_factory=dict)
    log_interval: float = 10.0


@dataclass
class RunReport:
    done: int = 0
    failed: int = 0
    skipped: int = 0
    interrupted: bool = False
    summaries: list[dict[str, Any]] = field(default_factory=list)


def count_inputs(sources: list[Source], done: Done, stride: int) -> tuple[int | None, int]:
    """(inputs to predict, of which already done): image files one pass over their names, videos their declared frames;
    None when a live stream makes it endless or a video does not declare its frames (MKV and WebM often do not)."""
    total: int | None = 0
    already = 0
    seen: set[int] = set()  # an image given twice is one input (it is predicted once)
    for source in sources:
        if isinstance(source, ImageFiles):
            for path in source.paths():
                if key_hash(str(path)) in seen:
                    continue
                seen.add(key_hash(str(path)))
                total = None if total is None else total + 1
                already += str(path) in done
        elif source.live:
            total = None
        else:
            frames = source.count()
            total = None if total is None or frames is None else total + -(-frames // stride)
    return total, already


def build_sinks(presenter: Presenter, task_name: str, sources: list[Source], outputs: Outputs, done: Done,
                stride: int) -> list[Sink]:
    """In the order they write a batch: the CSV before the ledger (a resumed run trims the CSV to the ledger)."""
    sinks: list[Sink] = [StdoutSink(presenter, outputs.fmt)] if outputs.fmt else []
    if outputs.out is not None:
        sinks += [CsvSink(outputs.out, presenter, done), JsonlSink(outputs.out),
                  PicturesSink(outputs.out, presenter, outputs.draw)]
        if any(s.video for s in sources):
            sinks.append(VideoSink(outputs.out, sources, task_name, outputs.draw, stride))
        if outputs.parquet:
            sinks.append(ParquetSink(outputs.out))
    return sinks


def write_batch(batch: list, sinks: list[Sink], progress: Progress, report: RunReport) -> None:
    """One batch: its failures as lines on stderr, each video's figures in the log, every sink, the progress."""
    for item in batch:
        if isinstance(item, Failure):
            print(f"mobilenetv2 predict: error: {item.message}", file=sys.stderr, flush=True)
        elif isinstance(item, SourceEnd) and item.summary is not None:
            report.summaries.append(item.summary)
            log.info("%s", describe(item.summary))
    for sink in sinks:
        sink.write(batch)
    progress.update(batch)


def run_prediction(predictor: Predictor, sources: list[Source], options: StreamOptions, outputs: Outputs) -> RunReport:
    """Predict every input once (those the output folder holds are skipped), writing each batch as it comes."""
    done = Done()
    if outputs.out is not None:
        check_settings(outputs.out, outputs.settings, outputs.overwrite)
        done = Done.of_ledger(outputs.out / LEDGER)
    options.pictures = outputs.draw
    total, already = count_inputs(sources, done, options.vid_stride)
    if already:
        log.info("resuming: %s of %s done (%s)", f"{already:,}", f"{total:,}", outputs.out / LEDGER)
    sinks = build_sinks(predictor.presenter, predictor.task_name, sources, outputs, done, options.vid_stride)
    videos = next((s for s in sinks if isinstance(s, VideoSink)), None)

    def skip(key: str) -> bool:
        return not done.claim(key) or (videos is not None and videos.finished(key))

    report = RunReport(skipped=already)
    only_images = all(isinstance(s, ImageFiles) for s in sources)
    progress = Progress(None if total is None else total - already, "images" if only_images else "frames",
                        outputs.log_interval)
    pipeline = Pipeline(predictor, sources, options, skip)
    batches = pipeline.batches()
    try:
        for batch in batches:
            write_batch(batch, sinks, progress, report)
    except KeyboardInterrupt:
        report.interrupted = True
        # Ctrl-C is how a camera or a stream is stopped: its figures (fps, dropped, latency) are still reported
        ends = [pipeline.end_of(SourceEnd(s.name, pipeline.stats[s.name].frames, s.stats()))
                for s in sources if s.live and s.name in pipeline.stats]
        write_batch(ends, sinks, progress, report)
    finally:
        batches.close()
        for sink in sinks:
            sink.close()
    report.done, report.failed = progress.done, progress.failed
    # the run's one summary: a warning when inputs failed, so that -q still says how many
    log.log(logging.WARNING if progress.failed else logging.INFO, "predict: %s%s", progress.close(),
            f"; written to {outputs.out}/" if outputs.out else "")
    if report.interrupted and outputs.out is not None and not all(s.live for s in sources):
        log.info("interrupted: rerun the same command to resume where it stopped")
    return report
