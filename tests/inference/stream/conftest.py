"""Videos, a square-finding detector and an MJPEG server that the stream tests make themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mobilenetv2.data import Preprocessing


# -- videos and streams that the tests make themselves ---------------------------------------------------------------
def square_frames(count: int, size: tuple[int, int] = (160, 120), side: int = 32, step: int = 3):
    """``count`` RGB frames (HWC uint8): a white square moving right over a dark background, and its boxes."""
    width, height = size
    for i in range(count):
        frame = np.full((height, width, 3), 30, dtype=np.uint8)
        x0, y0 = 8 + step * i, (height - side) // 2
        frame[y0:y0 + side, x0:x0 + side] = 255
        yield frame, (x0, y0, x0 + side, y0 + side)


def encode_video(path: Path, frames, fps: int = 25, codec: str = "libx264") -> Path:
    """Frames (HWC uint8) -> a video file (H.264 in mp4/mkv by default) through PyAV."""
    import av

    with av.open(str(path), "w") as container:
        stream = None
        for frame in frames:
            if stream is None:
                stream = container.add_stream(codec, rate=fps)
                stream.width, stream.height, stream.pix_fmt = frame.shape[1], frame.shape[0], "yuv420p"
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, "rgb24")))
        container.mux(stream.encode(None))
    return path


@pytest.fixture(scope="session")
def square_video(tmp_path_factory) -> Path:
    """40 frames of 160x120 at 25 fps, H.264 in mp4: one square moving right by 3 px a frame."""
    pytest.importorskip("av")
    frames = [f for f, _ in square_frames(40)]
    return encode_video(tmp_path_factory.mktemp("video") / "square.mp4", frames)


def square_finder(input_size: int = 64):
    """A detection runtime that sees what the tests draw: the bright pixels' bounding box as one "square" detection
    (SSD's output layout: [N, anchors, 4 boxes normalised xyxy + logits], class 0 the background). It stands for the
    network so that a test checks the pipeline, the video and the tracks on boxes it knows."""
    from mobilenetv2.backends.base import Runtime
    from mobilenetv2.weights.checkpoint import CheckpointMeta

    class Finder(Runtime):
        backend = "test"

        def run(self, inputs: np.ndarray) -> np.ndarray:
            out = np.zeros((len(inputs), 2, 6), dtype=np.float32)
            out[:, :, 4] = 10.0  # background everywhere ...
            for n, image in enumerate(inputs):
                ys, xs = np.nonzero(image.mean(0) > 0.5)
                if len(xs):  # ... but one anchor: the square
                    size = image.shape[-1]
                    out[n, 0, :4] = [xs.min() / size, ys.min() / size, (xs.max() + 1) / size, (ys.max() + 1) / size]
                    out[n, 0, 4:] = [-10.0, 10.0]
            return out

    meta = CheckpointMeta(task="detection", class_names=["background", "square"],
                          preprocessing=Preprocessing(input_size=input_size, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
                                                      crop_pct=1.0, resize_mode="squash"),
                          architecture={"name": "ssdlite", "args": {}})
    return Finder(meta)


@pytest.fixture
def square_detector():
    from mobilenetv2.inference.detector import Detector

    return Detector(square_finder())


@pytest.fixture(scope="session")
def make_square_video():
    """``make(path, count=40, codec="libx264", size=(160, 120)) -> path``: a video of the moving square."""
    pytest.importorskip("av")

    def make(path: Path, count: int = 40, codec: str = "libx264", size: tuple[int, int] = (160, 120)) -> Path:
        return encode_video(path, [f for f, _ in square_frames(count, size)], codec=codec)

    return make


@pytest.fixture
def mjpeg_server():
    """``serve(frames, fps, connections=1) -> url``: an HTTP server on 127.0.0.1 streaming MJPEG (multipart/x-mixed-
    replace, as IP cameras do) of the moving square, paced at ``fps``; the stream ends after ``frames`` frames; after
    ``connections`` streams it answers 503 (a camera gone); stopped afterwards."""
    import io
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    servers = []
    loop = [frame for frame, _ in square_frames(100, step=1)]  # the square crosses the frame, then starts again

    def serve(frames: int, fps: float, connections: int = 1) -> str:
        served = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                served.append(self.path)
                if len(served) > connections:
                    self.send_error(503)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                started = time.perf_counter()
                try:
                    for i in range(frames):
                        buffer = io.BytesIO()
                        Image.fromarray(loop[i % len(loop)]).save(buffer, "JPEG")
                        data = buffer.getvalue()
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(data)
                                         + data + b"\r\n")
                        time.sleep(max(0.0, started + (i + 1) / fps - time.perf_counter()))
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/stream.mjpg"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()
