"""ImageNet weights from torchvision's or timm's servers, through their local caches (never needed offline if cached)."""

from __future__ import annotations

from pathlib import Path
from urllib.error import URLError

from mobilenetv2.errors import UserError
from mobilenetv2.extras import require

SOURCES = ["torchvision", "timm"]


def torchvision_url(model_name: str, width_mult: float = 1.0) -> str:
    """torchvision's ImageNet weights URL (the IMAGENET1K_V1 weights) for one of our models."""
    from torchvision import models

    weights = {
        ("mobilenet_v2", 1.0): models.MobileNet_V2_Weights.IMAGENET1K_V1,
        ("mobilenet_v3_large", 1.0): models.MobileNet_V3_Large_Weights.IMAGENET1K_V1,
        ("mobilenet_v3_small", 1.0): models.MobileNet_V3_Small_Weights.IMAGENET1K_V1,
    }.get((model_name, float(width_mult)))
    if weights is None:
        raise UserError(f"torchvision has ImageNet weights for mobilenet_v2, mobilenet_v3_large and mobilenet_v3_small "
                        f"at width 1.0 only, not {model_name} at width {width_mult}")
    return weights.url


def timm_repo(model_name: str, width_mult: float = 1.0) -> str:
    """The Hugging Face repository of timm's ImageNet weights for MobileNetV2 at this width."""
    repos = {0.5: "timm/mobilenetv2_050.lamb_in1k", 1.0: "timm/mobilenetv2_100.ra_in1k", 1.4: "timm/mobilenetv2_140.ra_in1k"}
    if model_name != "mobilenet_v2" or float(width_mult) not in repos:
        raise UserError(f"timm weights are available for mobilenet_v2 at widths 0.5, 1.0 and 1.4, "
                        f"not {model_name} at width {width_mult}")
    return repos[float(width_mult)]


def fetch_pretrained(source: str, model_name: str, width_mult: float = 1.0) -> Path:
    """Path of the ImageNet weights file from ``source`` ('torchvision' or 'timm'), downloaded once into the cache."""
    if source == "torchvision":
        return _fetch_torchvision(torchvision_url(model_name, width_mult))
    if source == "timm":
        return _fetch_timm(timm_repo(model_name, width_mult))
    raise UserError(f"pretrained source must be one of {', '.join(SOURCES)} or a file path, got {source!r}")


def torch_hub_checkpoints() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def _fetch_torchvision(url: str) -> Path:
    import torch

    cached = torch_hub_checkpoints() / url.rsplit("/", 1)[-1]
    if cached.is_file():
        return cached
    cached.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(url, str(cached), progress=False)
    except (URLError, OSError) as exc:
        raise UserError(f"cannot fetch {url} (no network: {getattr(exc, 'reason', exc)}); download it elsewhere and pass "
                        f"--pretrained /path/{cached.name}, or put it in {cached.parent}/") from exc
    return cached


def _fetch_timm(repo: str) -> Path:
    require("huggingface_hub", "interop")
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(repo, "model.safetensors", local_files_only=True))
    except LocalEntryNotFoundError:
        pass
    try:
        return Path(hf_hub_download(repo, "model.safetensors"))
    except Exception as exc:  # noqa: BLE001 - network failures surface as many types
        raise UserError(f"cannot fetch https://huggingface.co/{repo} (no network? {type(exc).__name__}); download "
                        f"model.safetensors elsewhere and pass --pretrained /path/model.safetensors") from exc
