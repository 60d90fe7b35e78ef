"""``mobilenetv2 serve``: an HTTP server for a checkpoint or an ONNX export, batching concurrent requests."""

from __future__ import annotations

import argparse

from mobilenetv2.backends import list_backends
from mobilenetv2.cli.common import add_labels_arg, backend_help


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("serve", help="serve a model over HTTP (batched across requests, a page at /)",
                       description="Serve a checkpoint or an exported file (.onnx, .pte, .tflite, ...) on any backend "
                                   "with FastAPI + uvicorn: POST /v1/predict (an image as the body or as the multipart "
                                   "field 'file'), GET /v1/model, /healthz, /readyz, /metrics (Prometheus) and /docs; "
                                   "a page at / to drop a photo on. Concurrent requests are batched into one forward "
                                   "pass (up to --max-batch inputs or --max-wait-ms); a full queue answers 503 with "
                                   "Retry-After. Slow or stalled clients are shed: headers, pauses in a body and whole "
                                   "bodies have deadlines, and at most --max-uploads bodies stream in at once. "
                                   "Errors answer {\"error\": ...}. Binds to 127.0.0.1 unless --host says otherwise.")
    p.add_argument("model", help="our .safetensors checkpoint, a run folder, or an exported file (.onnx, .xml, .pte, ...)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--backend", default="auto", metavar="NAME",
                   help=backend_help(list_backends()) + "; 'onnx' is taken for onnxruntime")
    p.add_argument("--max-batch", type=int, default=16, help="inputs per forward pass at most (default 16; 1: no batching)")
    p.add_argument("--max-wait-ms", type=float, default=5.0, help="how long a request waits for others to batch with (5)")
    p.add_argument("--max-queue", type=int, default=256, help="inputs allowed to wait; more get 503 (default 256)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds a request may wait for its answer (504 after)")
    p.add_argument("--workers", type=int, default=1, help="server processes, each with its own model (default 1)")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads per worker (default: torch's)")
    p.add_argument("--decode-threads", type=int, default=None,
                   help="threads per worker decoding and resizing uploads (default: half the cores, at least 1)")
    p.add_argument("--header-timeout", type=float, default=10.0, metavar="S",
                   help="seconds a new connection has to send its request headers; slower ones are closed (default 10)")
    p.add_argument("--read-timeout", type=float, default=10.0, metavar="S",
                   help="the longest pause allowed while a request's body comes in; 408 and close after (default 10)")
    p.add_argument("--body-timeout", type=float, default=60.0, metavar="S",
                   help="seconds a whole request body may take to arrive; 408 and close after (default 60)")
    p.add_argument("--max-uploads", type=int, default=8, metavar="N",
                   help="uploads streaming in at once per worker (each up to 20 MB in memory); more get 503 (default 8)")
    p.add_argument("--keep-alive", type=float, default=5.0, metavar="S",
                   help="seconds an idle connection is kept open between requests (default 5)")
    add_labels_arg(p)
    p.add_argument("--api-key", default=None, help="require this key (X-API-Key or Authorization: Bearer) on every "
                                                   "prediction; also read from $MOBILENETV2_API_KEY")
    return p


def run(args: argparse.Namespace) -> int:
    import json
    import logging
    import os

    from mobilenetv2.errors import UserError
    from mobilenetv2.extras import require
    from mobilenetv2.serving.factory import CONFIG_VARIABLE

    for name in ("fastapi", "uvicorn", "python_multipart", "prometheus_client"):
        require(name, "serve")
    import uvicorn

    if (args.max_batch < 1 or args.max_queue < 1 or args.workers < 1 or args.max_wait_ms < 0 or args.timeout <= 0
            or (args.decode_threads is not None and args.decode_threads < 1) or args.max_uploads < 1
            or min(args.header_timeout, args.read_timeout, args.body_timeout, args.keep_alive) <= 0):
        raise UserError("--max-batch, --max-queue, --workers, --decode-threads and --max-uploads must be >= 1, "
                        "--max-wait-ms >= 0, and --timeout, --header-timeout, --read-timeout, --body-timeout and "
                        "--keep-alive > 0")
    from mobilenetv2.serving.model import load_served

    load_served(args.model, args.backend, args.threads, args.labels)  # fail here, in one line, not in every worker
    config = {"model": args.model, "backend": args.backend, "threads": args.threads, "labels": args.labels,
              "max_batch": args.max_batch,
              "max_wait_ms": args.max_wait_ms, "max_queue": args.max_queue, "timeout_s": args.timeout,
              "header_timeout_s": args.header_timeout, "read_timeout_s": args.read_timeout,
              "body_timeout_s": args.body_timeout, "max_uploads": args.max_uploads}
    if args.decode_threads is not None:
        config["decode_threads"] = args.decode_threads
    os.environ[CONFIG_VARIABLE] = json.dumps(config)
    if args.api_key:
        os.environ["MOBILENETV2_API_KEY"] = args.api_key
    logging.getLogger("mobilenetv2.serve").info("serving %s on http://%s:%d/ (%d worker(s))", args.model, args.host,
                                                args.port, args.workers)
    from mobilenetv2.serving.limits import HTTP_PROTOCOL

    uvicorn.run("mobilenetv2.serving.factory:app", factory=True, host=args.host, port=args.port, workers=args.workers,
                log_level="warning", timeout_graceful_shutdown=5, http=HTTP_PROTOCOL,
                timeout_keep_alive=args.keep_alive)
    return 0
