"""Batch-1 latency of TF's SSDLite person detector imported into ours (every backend, fp32 and int8) against
TensorFlow running the frozen graph itself, on the same preprocessed 300x300 inputs, interleaved in one run.

TensorFlow is no dependency of the project: it runs in a long-lived worker under another Python (``--tf-python``, a
venv with ``tensorflow``), a ``tf.compat.v1.Session`` of ``frozen_inference_graph.pb`` with intra/inter-op threads
pinned to ``--threads``. The inputs are TF's own preprocessed tensors of the shared photos (``network_input`` of
``../shared/data/people/reference/*.npz``: walkers, grace_hopper, cat), fed to TF at ``Preprocessor/sub`` and to ours
as the same pixels. Each round times every path of ours, each followed by TF (network only, then with its
postprocess), so that load hits both alike. Two comparisons:

* network: ours ``runtime.run`` (box decoding against the anchors included: it is in our graph) against TF fetching
  ``Squeeze`` and ``concat_1`` (box codes and class logits, nothing after the last convolutions);
* with postprocess: ours ``run`` then ``decode`` (sigmoid, score threshold 1e-8, NMS IoU 0.6, at most 100: the
  graph's own settings) against TF fetching ``detection_*`` (decoding, sigmoid, NonMaxSuppressionV3, padding to 100).

    python benchmarks/detector_latency.py --tf-python /work/tfvenv/bin/python [--threads 1 2] [--rounds 30]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
GRAPH = DATA / "people" / "ssdlite_pedestrians" / "frozen_inference_graph.pb"
PHOTOS = [DATA / "people" / "reference" / f"{name}.npz" for name in ("walkers", "grace_hopper", "cat")]
PATHS = ("eager", "bn_folded", "onnx", "int8", "openvino", "openvino_int8", "litert", "litert_int8", "executorch",
         "executorch_int8")
SCORE_THRESHOLD, NMS_IOU, MAX_DETECTIONS = 1e-8, 0.6, 100  # the graph's BatchMultiClassNonMaxSuppression
TF_NETWORK = ["Squeeze:0", "concat_1:0"]
TF_FULL = ["detection_boxes:0", "detection_scores:0", "detection_classes:0", "num_detections:0"]
TF_SHAPES = "Preprocessor/map/TensorArrayStack_1/TensorArrayGatherV3:0"  # the true image shapes the postprocess clips to


def worker(graph: str, threads: int, photos: list[str]) -> None:
    """The TF side (run under --tf-python): one JSON line per request on stdin, {"photo": i, "fetch": "network" or
    "full"}, answered by {"ms": time of session.run}; the first line out says the version and the outputs' shapes."""
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(Path(graph).read_bytes())
    tf_graph = tf.Graph()
    with tf_graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=threads, inter_op_parallelism_threads=threads)
    session = tf.compat.v1.Session(graph=tf_graph, config=config)
    inputs = [np.load(p)["network_input"] for p in photos]
    feeds = [{"Preprocessor/sub:0": x, TF_SHAPES: np.array([[*x.shape[1:]]], np.int32)} for x in inputs]
    fetches = {"network": TF_NETWORK, "full": TF_FULL}
    found = {name: session.run(fetch, feeds[0]) for name, fetch in fetches.items()}
    print(json.dumps({"tensorflow": tf.__version__, "shapes": {k: [list(v.shape) for v in out] for k, out in found.items()},
                      "detections": int(found["full"][3][0])}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        feed, fetch = feeds[request["photo"]], fetches[request["fetch"]]
        start = time.perf_counter()
        out = session.run(fetch, feed)
        ms = (time.perf_counter() - start) * 1e3
        answer = {"ms": ms}
        if request.get("outputs"):
            answer["outputs"] = [v.tolist() for v in out]
        print(json.dumps(answer), flush=True)


class TensorFlow:
    """The worker subprocess, asked for one timed session.run at a time."""

    def __init__(self, python: str, threads: int) -> None:
        command = [python, __file__, "--worker", str(GRAPH), str(threads), *map(str, PHOTOS)]
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"TF_CPP_MIN_LOG_LEVEL": "2"}
        self.errors = tempfile.TemporaryFile("w+")  # noqa: SIM115 (TF's log for the worker's life; closed in close)
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errors,
                                        text=True, env=env)
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            self.errors.seek(0)
            raise RuntimeError(f"the TF worker under {python} did not start: {self.errors.read()[-500:]}")
        self.info = json.loads(line)

    def run(self, photo: int, fetch: str, outputs: bool = False) -> dict:
        self.process.stdin.write(json.dumps({"photo": photo, "fetch": fetch, "outputs": outputs}) + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)
        self.errors.close()


def tf_missing(python: str) -> str | None:
    """Why TensorFlow cannot run under ``python`` (one line), or None."""
    try:
        found = subprocess.run([python, "-c", "import tensorflow"], capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"TensorFlow is missing: {python} does not run ({error})"
    if found.returncode:
        last = (found.stderr.strip().splitlines() or ["no error text"])[-1]
        return f"TensorFlow is missing: {python} cannot import tensorflow ({last})"
    return None


def person_checkpoint(given: Path | None, folder: Path) -> Path:
    """The person detector as our checkpoint: ``given``, or the frozen graph converted into ``folder``."""
    from mobilenetv2.cli import main

    if given:
        return given
    path = folder / "people.safetensors"
    if main(["convert", str(GRAPH), str(path)]) != 0:
        raise SystemExit(f"could not convert {GRAPH}")
    return path


def inputs_nchw() -> list[np.ndarray]:
    """TF's preprocessed inputs of the photos, as our NCHW float pixels."""
    return [np.ascontiguousarray(np.load(p)["network_input"].transpose(0, 3, 1, 2)) for p in PHOTOS]


def build_ours(names: list[str], checkpoint: Path, threads: int, workdir: Path, log: list[str]) -> dict:
    """name -> (runtime, [its native input per photo]) for every path that builds here; why the others did not."""
    import torch

    from mobilenetv2.backends.base import RuntimeOptions
    from mobilenetv2.benchmarking.inference import build_runtime, meta_at_resolution, unavailable
    from mobilenetv2.weights import load_checkpoint

    torch.set_num_threads(threads)
    ckpt = load_checkpoint(str(checkpoint))
    model, meta = ckpt.model.eval(), meta_at_resolution(ckpt.model, 300, ckpt.meta)
    pixels = inputs_nchw()
    options = RuntimeOptions(threads=threads, device="cpu", spin=False)
    built = {}
    for name in names:
        why = unavailable(name)
        try:
            if why:
                raise RuntimeError(why)
            runtime, _ = build_runtime(name, model, meta, workdir, options, pixels)
            native = [runtime.to_native(x) for x in pixels]
            runtime.run(native[0])
            built[name] = (runtime, native)
        except Exception as error:  # a backend that cannot take this model is reported, the others still run
            log.append(f"{name}: not run ({first_line(error)})")
    return built


def first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def timed_ours(runtime, native: np.ndarray) -> tuple[float, float, object]:
    """(ms of run, ms of run + decode with the graph's NMS settings, the raw outputs)."""
    import torch

    from mobilenetv2.tasks.detection.boxes import decode

    start = time.perf_counter()
    out = runtime.run(native)
    network = time.perf_counter()
    decode(torch.as_tensor(np.asarray(out)), SCORE_THRESHOLD, NMS_IOU, MAX_DETECTIONS, score_converter="sigmoid")
    end = time.perf_counter()
    return (network - start) * 1e3, (end - start) * 1e3, out


def interleave(built: dict, tf: TensorFlow, rounds: int, warmup: int = 3) -> dict[str, dict[str, list[float]]]:
    """Samples in ms: path -> {"network": [...], "full": [...]}, TF's under "tensorflow"; every path followed by TF."""
    names = list(built)
    samples = {n: {"network": [], "full": []} for n in [*names, "tensorflow"]}
    for r in range(-warmup, rounds):
        photo = r % len(PHOTOS)
        for name in names[r % len(names):] + names[: r % len(names)]:
            runtime, native = built[name]
            network, full, _ = timed_ours(runtime, native[photo])
            tf_network, tf_full = tf.run(photo, "network")["ms"], tf.run(photo, "full")["ms"]
            if r >= 0:
                samples[name]["network"].append(network)
                samples[name]["full"].append(full)
                samples["tensorflow"]["network"].append(tf_network)
                samples["tensorflow"]["full"].append(tf_full)
    return samples


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-logits.astype(np.float64)))


def agreement(built: dict, tf: TensorFlow) -> dict[str, float]:
    """Max |class score difference| of each path to TF's (sigmoid of the class logits, the same tensor in both), over
    the photos' 1917 anchors: what decides the detections (a logit of -20 against -25 decides nothing)."""
    found = {}
    tf_scores = [sigmoid(np.asarray(tf.run(i, "network", outputs=True)["outputs"][1])) for i in range(len(PHOTOS))]
    for name, (runtime, native) in built.items():
        diffs = [np.abs(sigmoid(np.asarray(runtime.run(x))[..., 4:]) - tf_scores[i]).max() for i, x in enumerate(native)]
        found[name] = float(max(diffs))
    return found


def table(samples: dict, diffs: dict, precisions: dict) -> str:
    tf_network = statistics.median(samples["tensorflow"]["network"])
    tf_full = statistics.median(samples["tensorflow"]["full"])
    lines = ["| path | precision | network ms | TF / ours | + postprocess ms | TF / ours | max score diff to TF |",
             "|---|---|---|---|---|---|---|",
             f"| TensorFlow 1.x session, frozen graph | fp32 | {tf_network:.2f} | 1.00 | {tf_full:.2f} | 1.00 | 0 |"]
    for name, found in samples.items():
        if name == "tensorflow":
            continue
        network, full = statistics.median(found["network"]), statistics.median(found["full"])
        lines.append(f"| {name} | {precisions[name]} | {network:.2f} | {tf_network / network:.2f}x | {full:.2f} | "
                     f"{tf_full / full:.2f}x | {diffs[name]:.2g} |")
    return "\n".join(lines)


def run_threads(args: argparse.Namespace, checkpoint: Path, threads: int, workdir: Path) -> dict:
    log: list[str] = []
    built = build_ours(args.paths, checkpoint, threads, workdir, log)
    tf = TensorFlow(args.tf_python, threads)
    try:
        diffs = agreement(built, tf)
        samples = interleave(built, tf, args.rounds)
    finally:
        tf.close()
    precisions = {n: runtime.precision for n, (runtime, _) in built.items()}
    text = table(samples, diffs, precisions)
    print(f"\n{threads} thread(s), {args.rounds} rounds x {len(built)} paths; TF {tf.info['tensorflow']}; "
          f"TF postprocess keeps {tf.info['detections']} detections (score threshold 1e-8)", flush=True)
    print("\n".join(log))
    print(text, flush=True)
    return {"threads": threads, "tensorflow": tf.info, "not_run": log, "table": text, "samples": samples}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], int(sys.argv[3]), sys.argv[4:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tf-python", default="/work/tfvenv/bin/python", help="a Python with tensorflow (a separate venv)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS)
    parser.add_argument("--person", type=Path, help="the person detector already converted (default: convert the graph)")
    parser.add_argument("--out", type=Path, default=Path("runs/detector-latency"))
    args = parser.parse_args()
    missing = tf_missing(args.tf_python)
    if missing:
        raise SystemExit(missing)
    from mobilenetv2.hardware import describe

    args.out.mkdir(parents=True, exist_ok=True)
    checkpoint = person_checkpoint(args.person, args.out)
    print(describe(), flush=True)
    results = [run_threads(args, checkpoint, t, args.out) for t in args.threads]
    (args.out / "results.json").write_text(json.dumps({"cpu": describe(), "results": results}, indent=1))


if __name__ == "__main__":
    main()
