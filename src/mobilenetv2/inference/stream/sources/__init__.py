"""The sources of a prediction run, one module each behind ``Source``: image files (files, folders, globs, list
files), video files and live streams (cameras, rtsp/http streams). ``open_sources`` reads what the user gave."""

from __future__ import annotations

import glob
from pathlib import Path

from mobilenetv2.errors import UserError
from mobilenetv2.inference.stream.sources.base import Context, Source
from mobilenetv2.inference.stream.sources.files import ImageFiles
from mobilenetv2.inference.stream.sources.live import LiveStream, is_live
from mobilenetv2.inference.stream.sources.video import VideoFile, is_video_file

__all__ = ["Context", "ImageFiles", "LiveStream", "Source", "VideoFile", "open_sources"]


def open_sources(inputs: list[str], reconnects: int = 3, remote: bool = False) -> list[Source]:
    """One source per video or stream (a glob of videos, "clips/*.mp4", gives one per video it matches), one
    ``ImageFiles`` per run of image files, folders, globs and list files, in the order given. A missing file, folder or
    camera is one line (``UserError``) before any work; object-store URIs (s3://...) only with ``remote`` (Ray reads
    them)."""
    sources: list[Source] = []
    images: list[str] = []
    for item in inputs:
        if is_live(item) or is_video_file(item):
            if images:
                sources.append(ImageFiles(images, remote))
                images = []
            if is_live(item):
                sources.append(LiveStream(item, reconnects))
            elif glob.has_magic(item) and not Path(item).exists():  # "clips/*.mp4": each video it matches
                matches = sorted(q for q in glob.glob(item, recursive=True) if Path(q).is_file())
                if not matches:
                    raise UserError(f"{item}: no video matches this pattern")
                sources += [VideoFile(q) for q in matches]
            else:
                sources.append(VideoFile(item))
        else:
            images.append(item)
    if images:
        sources.append(ImageFiles(images, remote))
    return sources
