"""Image files: files, folders (recursive, in sorted order, walked lazily so that millions of files never sit in a
list), glob patterns and list files (one path a line, relative to the list's folder). Each file is decoded later, in
a worker (``read``)."""

from __future__ import annotations

import functools
import glob
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from mobilenetv2.data.images import is_image_file
from mobilenetv2.errors import UserError
from mobilenetv2.inference.stream.decode import read_picture
from mobilenetv2.inference.stream.frames import Frame, SourceEnd
from mobilenetv2.inference.stream.sources.base import Context, Item, Source

log = logging.getLogger("mobilenetv2.predict")
LIST_SUFFIXES = (".txt", ".lst")
REMOTE_SCHEMES = ("s3://", "gs://", "gcs://", "abfs://", "az://", "hdfs://")


def is_remote(item: str) -> bool:
    """An object-store URI (s3://bucket/prefix/...): Ray Data lists and reads it."""
    return item.startswith(REMOTE_SCHEMES)


def walk(folder: Path, visited: set[tuple[int, int]] | None = None, said: set[str] | None = None) -> Iterator[Path]:
    """The image files under ``folder`` in sorted path order, one folder's listing in memory at a time. A folder already
    walked (a symlink loop, ``ln -s . loop``, or a second link to it) is not walked again, and it or an unreadable
    folder is one warning (once: ``said`` holds those given); the rest is walked."""
    visited = set() if visited is None else visited
    said = set() if said is None else said
    try:
        info = folder.stat()
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        warn_once(f"skipped {folder}: {exc.strerror or exc}", said)
        return
    visited.add((info.st_dev, info.st_ino))
    for entry in entries:
        if is_folder(entry):
            if (entry.stat().st_dev, entry.stat().st_ino) in visited:
                warn_once(f"skipped {entry.path}: the same folder as one already walked (a symlink loop?)", said)
                continue
            yield from walk(Path(entry.path), visited, said)
        elif is_image_file(entry.name) and is_file(entry):
            yield Path(entry.path)


def warn_once(message: str, said: set[str]) -> None:
    if message not in said:
        said.add(message)
        log.warning("%s", message)


def is_folder(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # a link that cannot be resolved (a loop of links): not a folder
        return False


def is_file(entry: os.DirEntry) -> bool:
    try:
        return entry.is_file()
    except OSError:
        return False


def read_list(path: Path) -> Iterator[Path]:
    """The paths a list file names, one a line (blank lines and # comments skipped), relative to its folder."""
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            line = line.strip()
            if line and not line.startswith("#"):
                yield path.parent / line if not os.path.isabs(line) else Path(line)


def is_list_file(item: str) -> bool:
    return Path(item).suffix.lower() in LIST_SUFFIXES and Path(item).is_file()


class ImageFiles(Source):
    """Files (kept whatever their extension, so that a bad one is reported), folders, globs and list files."""

    def __init__(self, items: list[str], remote: bool = False) -> None:
        for item in items:
            if is_remote(item) and not remote:
                raise UserError(f"{item}: object-store paths are read on a Ray cluster: add --ray")
            if not (is_remote(item) or Path(item).exists() or glob.has_magic(item)):
                raise UserError(f"{item}: no such file, folder or matching pattern")
        self.items = items
        self.name = " ".join(items)
        self._count: int | None = None
        self.said: set[str] = set()  # the warnings given while walking folders (each once, however often walked)

    def paths(self) -> Iterator[Path]:
        """The local image files, in order (object-store URIs are Ray's to list)."""
        for item in self.items:
            if is_remote(item):
                continue
            path = Path(item)
            if path.is_dir():
                yield from walk(path, said=self.said)
            elif is_list_file(item):
                yield from read_list(path)
            elif path.is_file():
                yield path
            else:
                yield from sorted(Path(q) for q in glob.glob(item, recursive=True) if Path(q).is_file())

    def count(self) -> int:
        if self._count is None:
            self._count = sum(1 for _ in self.paths())
        return self._count

    def frames(self, context: Context) -> Iterator[Item]:
        count, rule = 0, None if context.pictures else context.decode_size  # pictures are drawn at full size
        for ordinal, path in enumerate(self.paths(), context.first_ordinal):
            name = str(path)
            yield Frame(key=name, source=name, ordinal=ordinal,
                        read=functools.partial(read_picture, path, name, rule))
            count += 1
        yield SourceEnd(self.name, count)
