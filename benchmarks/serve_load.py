"""Load test of `mobilenetv2 serve` on loopback against its bound on this machine, measured in one run: throughput,
latency percentiles and errors at several concurrencies, beside the runtime's raw batched throughput and the
server's own decoding, both in this process.

The model is the real ImageNet MobileNetV2 (the shared TFLite file, converted), 224x224; its int8 ONNX file comes from
`mobilenetv2 quantize` calibrated on the shared photos. The requests post real JPEGs, the shared photos in turn
(hymenoptera_data and the TFLite parrot: 130 to 2592 px), so that the server decodes what `predict` decodes. The
bound is the one of `benchmarks/predict_stream.py`: on 2 cores the model and the decoding share the cores, so an
image costs 1/raw + 1/decode of them, raw being the runtime alone on batches of 32 and decode the server's own
upload path (``prepare_upload``: draft-mode JPEG decoding, resize, crop, normalise) on 2 threads over the same bodies.
The client is a small asyncio HTTP/1.1 client with one keep-alive connection per concurrent user, so that it costs the
2-core machine as little CPU as possible; it runs in this process while the server runs in another.

    python benchmarks/serve_load.py [--requests 3000] [--concurrency 1 32] [--seconds 60] [--out runs/serve-load]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from mobilenetv2.cli import main as cli
from mobilenetv2.hardware import describe
from mobilenetv2.inference import load_predictor
from mobilenetv2.serving.routes import prepare_upload

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MAX_BATCH = 32
RAW_THREADS = 2  # the server's --threads
CPU_MS: dict[str, float] = {}  # CPU time an image of raw and decode (this process's, all threads): robust to other load


def prepare_models(out: Path) -> dict[str, tuple[Path, str]]:
    """name -> (the model, the --backend it is served with): the converted ImageNet checkpoint and its int8 ONNX file."""
    out.mkdir(parents=True, exist_ok=True)
    checkpoint, int8 = out / "imagenet_v2.safetensors", out / "imagenet_v2.int8.onnx"
    if not checkpoint.exists():
        cli(["convert", str(DATA / "tflite" / "mobilenet_v2_1.0_224_quant.tflite"), str(checkpoint),
             "--labels", str(DATA / "tflite" / "imagenet_labels.txt")])
    if not int8.exists():
        cli(["quantize", str(checkpoint), "--calib", str(DATA / "hymenoptera_data" / "val"), "--num-calib", "64",
             "--out", str(int8)])
    return {"torch": (checkpoint, "torch"), "onnx int8": (int8, "onnxruntime"), "auto int8": (int8, "auto")}


def payloads() -> list[bytes]:
    """The request bodies: every shared real JPEG, read once."""
    photos = sorted((DATA / "hymenoptera_data").rglob("*.jpg")) + sorted((DATA / "tflite").glob("*.jpg"))
    return [p.read_bytes() for p in photos]


def raw_throughput(predictor, bodies: list[bytes], batch: int = MAX_BATCH, seconds: float = 5.0) -> float:
    """Images per second of the runtime alone: batches of ``batch`` normalised real photos prepared in advance."""
    inputs = np.concatenate([prepare_upload(predictor, body)[0] for body in bodies[:batch]])
    predictor.runtime(inputs)
    done, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        predictor.runtime(inputs)
        done += batch
    CPU_MS["raw"] = 1000 * (time.process_time() - cpu) / done
    return done / (time.perf_counter() - start)


def decode_throughput(predictor, bodies: list[bytes], threads: int = RAW_THREADS) -> float:
    """Images per second through the server's own upload path (``prepare_upload``) on ``threads`` threads, no model."""
    with ThreadPoolExecutor(threads) as pool:
        start, cpu = time.perf_counter(), time.process_time()
        for _ in pool.map(lambda body: prepare_upload(predictor, body), bodies):
            pass
    CPU_MS["decode"] = 1000 * (time.process_time() - cpu) / len(bodies)
    return len(bodies) / (time.perf_counter() - start)


async def one_user(host: str, port: int, bodies: list[bytes], first: int, count: int, latencies: list, errors: list,
                   deadline: float) -> None:
    """One keep-alive connection posting ``count`` requests, the bodies in turn from ``first``; a connection the server
    closes (an error answered with ``Connection: close``) counts as an error and is opened again."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for i in range(count):
            if time.perf_counter() > deadline:
                return
            body = bodies[(first + i) % len(bodies)]
            head = (f"POST /v1/predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: image/jpeg\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n").encode()
            start = time.perf_counter()
            try:
                status_line = await exchange(reader, writer, head + body)
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                errors.append(type(exc).__name__)
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
                continue
            if b" 200 " in status_line:
                latencies.append(time.perf_counter() - start)
            else:
                errors.append(status_line.decode().strip())
    finally:
        writer.close()


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> bytes:
    """Send one request, read its whole answer; its status line."""
    writer.write(request)
    await writer.drain()
    status_line = await reader.readline()
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await reader.readexactly(length)
    return status_line


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its threads (Linux /proc), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def load(port: int, bodies: list[bytes], requests: int, concurrency: int, seconds: float, server_pid: int) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    per_user = -(-requests // concurrency)
    server_cpu, client_cpu = cpu_seconds(server_pid), time.process_time()
    start = time.perf_counter()
    await asyncio.gather(*(one_user("127.0.0.1", port, bodies, user * per_user, per_user, latencies, errors,
                                    start + seconds) for user in range(concurrency)))
    elapsed = time.perf_counter() - start
    server_cpu, client_cpu = cpu_seconds(server_pid) - server_cpu, time.process_time() - client_cpu
    ms = sorted(1000 * x for x in latencies)
    pct = (lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]) if ms else (lambda q: float("nan"))
    return {"concurrency": concurrency, "requests": len(ms) + len(errors), "errors": len(errors),
            "throughput": len(ms) / elapsed, "p50_ms": pct(0.50), "p95_ms": pct(0.95), "p99_ms": pct(0.99),
            "mean_ms": statistics.fmean(ms) if ms else float("nan"),
            "server_cpu_ms": 1000 * server_cpu / max(len(ms), 1), "client_cpu_ms": 1000 * client_cpu / max(len(ms), 1)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(model: Path, max_batch: int, backend: str, uploads: int) -> tuple[subprocess.Popen, int]:
    """The server in a new process; ``uploads``: bodies streaming in at once (every user's: real photos come in several
    messages, and the default cap of 8 answers the 9th with 503)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mobilenetv2", "serve", str(model), "--port", str(port),
                             "--max-batch", str(max_batch), "--threads", str(RAW_THREADS), "--max-queue", "1024",
                             "--backend", backend, "--max-uploads", str(uploads)],
                            env={**os.environ, "OMP_NUM_THREADS": str(RAW_THREADS)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
                if r.status == 200:
                    return proc, port
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not become ready")


def measure(backend: str, model: Path, engine: str, bodies: list[bytes], args) -> list[dict]:
    """The backend's raw and decode rates, then its server at each concurrency (batching on, and off if asked)."""
    predictor = load_predictor(model, device="cpu", threads=RAW_THREADS, spin=False, backend=engine)
    raw, decode = raw_throughput(predictor, bodies), decode_throughput(predictor, bodies)
    if engine == "auto":  # the raw figure is the chosen backend's; the server reads the same cached choice
        backend = f"auto int8 ({predictor.runtime.backend})"
    del predictor
    bound = 1 / (1 / raw + 1 / decode)
    print(f"{backend}: raw {raw:.0f} img/s (batches of {MAX_BATCH}), decode {decode:.0f} img/s ({RAW_THREADS} threads, "
          f"{len(bodies)} real JPEGs), bound 1/(1/raw + 1/decode) = {bound:.0f} img/s; CPU an image: raw "
          f"{CPU_MS['raw']:.2f} ms + decode {CPU_MS['decode']:.2f} ms", flush=True)
    rows = []
    for batching, max_batch in (("on", MAX_BATCH), ("off", 1))[:2 if args.batching_off else 1]:
        proc, port = serve(model, max_batch, engine, max(args.concurrency))
        try:
            asyncio.run(load(port, bodies, 64, 8, 30, proc.pid))  # warm the server and the client
            for concurrency in args.concurrency:
                row = asyncio.run(load(port, bodies, args.requests, concurrency, args.seconds, proc.pid))
                row |= {"backend": backend, "batching": batching, "raw_throughput": raw, "decode_throughput": decode,
                        "bound": bound, "of_bound": row["throughput"] / bound,
                        "cpu_of_bound": (CPU_MS["raw"] + CPU_MS["decode"]) / row["server_cpu_ms"]}
                rows.append(row)
                print(f"{backend:9} batching {batching:3} c={concurrency:<3} {row['throughput']:7.1f} req/s "
                      f"({row['of_bound']:.2f}x the bound)  p50 {row['p50_ms']:.1f} p95 {row['p95_ms']:.1f} "
                      f"p99 {row['p99_ms']:.1f} ms  errors {row['errors']}  ({row['requests']} requests; CPU a request: "
                      f"server {row['server_cpu_ms']:.2f} ms, client {row['client_cpu_ms']:.2f} ms)", flush=True)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per concurrency level (default 3000)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--seconds", type=float, default=60, help="at most this long per level (default 60)")
    parser.add_argument("--backends", nargs="+", choices=["torch", "onnx int8", "auto int8"], default=["onnx int8"])
    parser.add_argument("--batching-off", action="store_true", help="also serve with --max-batch 1")
    parser.add_argument("--out", type=Path, default=Path("runs/serve-load"))
    args = parser.parse_args()
    print(describe())
    print("load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg()) + " (before)")
    models, bodies = prepare_models(args.out), payloads()
    results = []
    for backend, (model, engine) in models.items():
        if backend in args.backends:
            results += measure(backend, model, engine, bodies, args)
    print("load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg()) + " (after)")
    print("\n| backend | batching | concurrency | req/s | raw | decode | bound | of the bound | p50 ms | p95 ms | p99 ms "
          "| p99/p50 | errors | server CPU ms/request | (raw + decode) CPU / server CPU | client CPU ms/request |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['backend']} | {r['batching']} | {r['concurrency']} | {r['throughput']:.1f} | {r['raw_throughput']:.0f} "
              f"| {r['decode_throughput']:.0f} | {r['bound']:.0f} | **{r['of_bound']:.2f}x** | {r['p50_ms']:.1f} "
              f"| {r['p95_ms']:.1f} | {r['p99_ms']:.1f} | {r['p99_ms'] / r['p50_ms']:.2f} | {r['errors']} "
              f"| {r['server_cpu_ms']:.2f} | {r['cpu_of_bound']:.2f}x | {r['client_cpu_ms']:.2f} |")
    (args.out / "results.json").write_text(json.dumps({"cpu": describe(), "results": results}, indent=2))
    assert all(np.isfinite(r["throughput"]) for r in results)


if __name__ == "__main__":
    main()
