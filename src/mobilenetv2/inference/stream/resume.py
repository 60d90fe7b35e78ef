"""What an output folder already holds: the keys of the predictions in ``predictions.jsonl`` (the ledger: a run killed
mid-way leaves at most a partial last line, cut off here), kept as sorted 64-bit hashes (8 bytes an input, whatever
the run's size), and the settings of the run that wrote them (``predict.json``)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mobilenetv2.errors import UserError
from mobilenetv2.io import atomic_path, atomic_write_text

LEDGER, SETTINGS = "predictions.jsonl", "predict.json"
log = logging.getLogger("mobilenetv2.predict")


def key_hash(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8", "surrogateescape"), digest_size=8).digest(), "little")


def cut_partial_line(path: Path) -> None:
    """Drop an unfinished last line (the process was killed while writing it)."""
    size = path.stat().st_size
    if not size:
        return
    with open(path, "rb+") as f:
        f.seek(max(0, size - 1))
        if f.read(1) == b"\n":
            return
        block, end = 1 << 16, size
        while end > 0:
            start = max(0, end - block)
            f.seek(start)
            chunk = f.read(end - start)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                f.truncate(start + newline + 1)
                return
            end = start
        f.truncate(0)


def ledger_records(path: Path, skip: int = 0) -> Iterator[dict[str, Any]]:
    """The records of a ledger, one at a time, after the first ``skip``."""
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines):
            if number >= skip and line.strip():
                yield json.loads(line)


def record_key(record: dict[str, Any]) -> str:
    return record["image"] if record.get("frame") is None else f"{record['image']}#{record['frame']}"


class Done:
    """The keys already predicted: ``key in done`` (sorted hashes, binary search), and those claimed by this run."""

    def __init__(self, keys: Iterable[str] = ()) -> None:
        self.hashes = np.unique(np.fromiter((key_hash(k) for k in keys), dtype=np.uint64))
        self.last: str | None = None
        self.claimed: set[int] = set()

    def claim(self, key: str) -> bool:
        """True the first time a key not already done is claimed: an input given twice is predicted once."""
        h = key_hash(key)
        if key in self or h in self.claimed:
            return False
        self.claimed.add(h)
        return True

    @classmethod
    def of_ledger(cls, path: Path) -> Done:
        if not path.is_file():
            return cls()
        cut_partial_line(path)
        drop_duplicates(path)
        last: list[str] = []

        def keys() -> Iterator[str]:
            for record in ledger_records(path):
                last[:] = [record_key(record)]
                yield last[0]

        done = cls(keys())
        done.last = last[0] if last else None
        return done

    def __len__(self) -> int:
        return len(self.hashes)

    def __contains__(self, key: str) -> bool:
        h = np.uint64(key_hash(key))
        i = int(np.searchsorted(self.hashes, h))
        return i < len(self.hashes) and self.hashes[i] == h


def drop_duplicates(path: Path) -> int:
    """Rewrite a ledger that holds a key twice (written by two runs at once, before runs took a lock) keeping each
    key's first record; the number of lines dropped."""
    seen: set[int] = set()
    duplicates = 0
    for record in ledger_records(path):
        h = key_hash(record_key(record))
        duplicates += h in seen
        seen.add(h)
    if duplicates:
        seen.clear()
        with atomic_path(path) as tmp, open(path, encoding="utf-8") as lines, open(tmp, "w", encoding="utf-8") as out:
            for line in lines:
                if line.strip():
                    h = key_hash(record_key(json.loads(line)))
                    if h not in seen:
                        out.write(line)
                    seen.add(h)
        log.warning("%s held %d duplicate predictions: kept the first of each", path, duplicates)
    return duplicates


def check_settings(out: Path, settings: dict[str, Any], overwrite: bool) -> None:
    """Record the run's settings in OUT/predict.json; a folder holding predictions made with other settings (another
    model, other options) is one line, unless ``overwrite`` starts it afresh."""
    path = out / SETTINGS
    if path.is_file() and not overwrite:
        before = json.loads(path.read_text())
        changed = [k for k in settings if before.get(k) != settings[k]]
        if changed and (out / LEDGER).is_file():
            raise UserError(f"{out} holds predictions made with other settings ({', '.join(changed)}: "
                            f"{before.get(changed[0])!r} then, {settings[changed[0]]!r} now); give another --out, or "
                            "--overwrite to start again")
    if overwrite:
        for name in os.listdir(out) if out.is_dir() else []:
            if name in (LEDGER, SETTINGS, "predictions.csv", "predictions.parquet") or name.startswith("videos"):
                target = out / name
                if target.is_dir():
                    import shutil

                    shutil.rmtree(target)
                else:
                    target.unlink()
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(settings, indent=2) + "\n")
