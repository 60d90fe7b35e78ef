"""``mobilenetv2 serve`` as a user runs it: one-line errors, and two worker processes that survive losing one."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mobilenetv2.cli import main
from mobilenetv2.data import Preprocessing
from mobilenetv2.models import create_model
from mobilenetv2.weights import save_checkpoint

pytest.importorskip("uvicorn")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    model = create_model("mobilenet_v2", width_mult=0.35, num_classes=3)
    return save_checkpoint(tmp_path_factory.mktemp("servecli") / "m.safetensors", model, ["a", "b", "c"],
                           Preprocessing(input_size=64, crop_pct=1.0))


@pytest.mark.parametrize(("args", "text"), [
    (["missing.safetensors"], "missing.safetensors"),
    (["{ckpt}", "--max-batch", "0"], "--max-batch"),
    (["{ckpt}", "--decode-threads", "0"], "--decode-threads"),
    (["{ckpt}", "--backend", "gpu"], "unknown backend 'gpu'; allowed: torch, onnxruntime"),
])
def test_bad_options_are_one_line(checkpoint, capsys, args, text):
    try:
        code = main(["serve", *[a.format(ckpt=checkpoint) for a in args]])
    except SystemExit as exit_:  # usage errors leave through argparse
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2 and text in err and len(err.strip().splitlines()) == 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: bytes) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=30) as response:
            json.loads(response.read())
            return response.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return -1  # the connection died with the worker


def children(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in found.read_text().split()] if found.exists() else []


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find the worker processes")
def test_two_workers_keep_answering_when_one_is_killed(checkpoint):
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "mobilenetv2", "serve", str(checkpoint), "--port", str(port),
                               "--workers", "2", "--threads", "1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url + "/readyz", timeout=5) as r:
                    if r.status == 200 and len(children(server.pid)) >= 2:
                        break
            except OSError:
                time.sleep(0.2)
        workers = [p for p in children(server.pid) if Path(f"/proc/{p}/cmdline").read_bytes().count(b"multiprocessing")]
        assert len(workers) >= 2, (children(server.pid), server.poll())
        buffer = io.BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, "PNG")
        body = buffer.getvalue()
        results: list[list[tuple[float, int]]] = [[] for _ in range(4)]
        stop = threading.Event()

        def client(out: list) -> None:
            while not stop.is_set():
                sent = time.monotonic()
                out.append((sent, post(url + "/v1/predict", body)))

        threads = [threading.Thread(target=client, args=(r,)) for r in results]
        for t in threads:
            t.start()
        time.sleep(1.0)
        os.kill(workers[0], signal.SIGKILL)
        killed_at = time.monotonic()
        time.sleep(3.0)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        statuses = [s for r in results for _, s in r]
        failed = [s for s in statuses if s != 200]
        assert len(failed) <= len(threads), statuses  # at most the requests in flight on the killed worker
        late = [s for r in results for t, s in r if t > killed_at + 0.5]
        assert late and all(s == 200 for s in late)  # the other worker (and a restarted one) answer everything
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
