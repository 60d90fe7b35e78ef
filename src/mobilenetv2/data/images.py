"""Reading images robustly: every mode PIL opens becomes 8-bit RGB; broken files raise one clear error."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from mobilenetv2.errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is broken, not silently grey


class BadImageError(UserError):
    """An image file that cannot be decoded."""


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode (L, P, RGBA, CMYK, I;16, I, F, LA...) to 8-bit RGB; transparency over white."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        img = Image.fromarray(np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def load_image(path: str | os.PathLike[str]) -> Image.Image:
    """Open, fully decode and convert an image to RGB, or raise ``BadImageError`` naming the file."""
    try:
        with Image.open(path) as img:
            img.load()
            return to_rgb(img)
    except FileNotFoundError:
        raise BadImageError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise BadImageError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from None


def is_image_file(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def find_images(inputs: list[str]) -> list[Path]:
    """Expand files, folders (recursively) and glob patterns into a sorted list of image paths.

    Files given by name are kept whatever their extension, so that a bad one is reported, not ignored.
    """
    found: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found += sorted(q for q in p.rglob("*") if q.is_file() and is_image_file(q))
        elif p.is_file():
            found.append(p)
        elif glob.has_magic(item):
            found += sorted(Path(q) for q in glob.glob(item, recursive=True) if Path(q).is_file())
        else:
            raise UserError(f"{item}: no such file, folder or matching pattern")
    return found


def list_image_folder(root: str | os.PathLike[str]) -> tuple[list[tuple[Path, int]], list[str]]:
    """ImageFolder layout: one sub-folder per class. Returns (path, label) samples and sorted class names.

    Empty class folders are kept as classes (their absence of images is reported by the caller).
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: not a folder")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise UserError(f"{root}: no class sub-folders (expected one folder of images per class)")
    samples = [
        (f, label)
        for label, name in enumerate(classes)
        for f in sorted((root / name).rglob("*"))
        if f.is_file() and is_image_file(f)
    ]
    return samples, classes


def verify_image(path: str | os.PathLike[str], decode: bool = True) -> str | None:
    """Cheaply check that a file decodes: None if fine, else the reason. JPEGs decode at 1/8 scale (still every byte);
    ``decode=False`` reads the header only."""
    try:
        with Image.open(path) as img:
            if not decode:
                return None
            if img.format == "JPEG":
                img.draft("RGB", (max(1, img.width // 8), max(1, img.height // 8)))
            img.load()
        return None
    except FileNotFoundError:
        return "no such file"
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        return f"{type(exc).__name__}: {exc}"
