"""Reading images robustly: every mode PIL opens becomes 8-bit RGB, upright by its EXIF orientation; broken or
over-large files (decompression bombs) raise one clear error naming the file."""

from __future__ import annotations

import glob
import io
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from mobilenetv2.errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is broken, not silently grey
# Larger images are refused before decoding: 89.5 megapixels (PIL's own warning threshold) is 256 MiB as 8-bit RGB
# and holds any camera photo up to 64 MP (e.g. 9248x6936), while a 200-byte PNG can claim 30000x30000 (2.7 GB).
MAX_IMAGE_PIXELS = 89_478_485
DECODE_ERRORS = (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError)


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


def check_pixels(img: Image.Image, where: object) -> None:
    """Raise ``BadImageError`` for an image above ``MAX_IMAGE_PIXELS`` (checked from the header, before decoding)."""
    width, height = img.size
    if width * height > MAX_IMAGE_PIXELS:
        raise BadImageError(f"{where}: image of {width}x{height} = {width * height:,} pixels is above the limit of "
                            f"{MAX_IMAGE_PIXELS:,} pixels (a decompression bomb, or a photo to downscale first)")


def bomb_error(where: object, exc: Exception) -> BadImageError:
    """PIL's decompression-bomb warning or error as our one message: the image's size and our one limit (PIL's own
    message names its error threshold, twice ours)."""
    size = re.search(r"\((\d+) pixels\)", str(exc))
    pixels = f" of {int(size.group(1)):,} pixels" if size else ""
    return BadImageError(f"{where}: image{pixels} is above the limit of {MAX_IMAGE_PIXELS:,} pixels (a decompression "
                         "bomb, or a photo to downscale first)")


@contextmanager
def open_image(path: str | os.PathLike[str] | io.BytesIO, where: object = None) -> Iterator[Image.Image]:
    """``Image.open`` with the pixel limit checked from the header; every failure is a ``BadImageError`` naming
    ``where`` (default: the path)."""
    where = path if where is None else where
    try:
        with warnings.catch_warnings():
            # PIL warns above its limit and raises above twice it; both become one error for this file
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
    except FileNotFoundError:
        raise BadImageError(f"{where}: no such file") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise bomb_error(where, exc) from exc
    except DECODE_ERRORS as exc:
        raise BadImageError(f"{where}: not a readable image ({type(exc).__name__}: {_reason(exc)})") from exc
    with img:
        check_pixels(img, where)
        yield img


def upright(img: Image.Image) -> Image.Image:
    """The image turned by its EXIF orientation tag (phone photos are stored sideways with a tag saying so)."""
    try:
        return ImageOps.exif_transpose(img) or img
    except DECODE_ERRORS:  # a malformed EXIF block: keep the pixels as stored
        return img


def load_image(path: str | os.PathLike[str] | io.BytesIO, where: object = None) -> Image.Image:
    """Open, fully decode, turn upright (EXIF) and convert an image to RGB, or raise ``BadImageError`` naming the file
    (or ``where``)."""
    where = path if where is None else where
    with open_image(path, where) as img:
        try:
            img.load()
            return to_rgb(upright(img))
        except DECODE_ERRORS as exc:
            raise BadImageError(f"{where}: not a readable image ({type(exc).__name__}: {_reason(exc)})") from exc


def _reason(exc: Exception) -> str:
    """PIL's message without the repr of an in-memory file ("<_io.BytesIO object at 0x...>")."""
    return re.sub(r"\s*<_io\.BytesIO object at 0x[0-9a-f]+>", "", str(exc))


def load_image_bytes(data: bytes, where: object = "the upload") -> Image.Image:
    """``load_image`` for bytes held in memory (an HTTP upload): the same limits and one-line errors."""
    if not data:
        raise BadImageError(f"{where}: empty (no image bytes)")
    return load_image(io.BytesIO(data), where)


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
        with open_image(path) as img:
            if not decode:
                return None
            if img.format == "JPEG":
                img.draft("RGB", (max(1, img.width // 8), max(1, img.height // 8)))
            img.load()
        return None
    except BadImageError as exc:
        return str(exc).removeprefix(f"{path}: ")
    except DECODE_ERRORS as exc:
        return f"{type(exc).__name__}: {exc}"


def spread_images(inputs: list[str], limit: int) -> list[Path]:
    """At most ``limit`` of the images that ``inputs`` names, spread evenly over the sorted list (class folders are
    often sorted, so the first ``limit`` would be one class); none found is an error."""
    paths = find_images(list(inputs))
    if not paths:
        raise UserError(f"no images found in {' '.join(map(str, inputs))}")
    return paths[::max(1, len(paths) // limit)][:limit]
