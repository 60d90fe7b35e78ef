"""The app that uvicorn builds in each worker process, from the options ``mobilenetv2 serve`` puts in the environment."""

from __future__ import annotations

import json
import os

from fastapi import FastAPI

from mobilenetv2.serving.app import ServeOptions, create_app
from mobilenetv2.serving.model import load_served
from mobilenetv2.serving.state import CONFIG_VARIABLE

__all__ = ["CONFIG_VARIABLE", "app"]


def app() -> FastAPI:
    """Load the model named in ``$MOBILENETV2_SERVE_CONFIG`` and serve it (one copy per worker process)."""
    config = json.loads(os.environ[CONFIG_VARIABLE])
    predictor, card = load_served(config["model"], config.get("backend"), config.get("threads"),
                                   config.get("labels"))
    options = ServeOptions(**{k: v for k, v in config.items() if k in ServeOptions.__dataclass_fields__})
    options.api_key = os.environ.get("MOBILENETV2_API_KEY") or options.api_key
    return create_app(predictor, card, options)
