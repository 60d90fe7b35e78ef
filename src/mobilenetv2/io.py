"""Atomic file writes (a file appears under its final name complete, or not at all) and the advisory lock that makes
one process the only writer of an output folder."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on failure it is removed."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; the final file gets the usual permissions
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def _staging_folder(target: Path) -> Iterator[Path]:
    """A hidden folder beside ``target`` (same file system: its contents can take their names by rename), removed after."""
    target.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a path of the same name inside a private folder beside ``path``; on success the folder written there
    replaces ``path`` (an older one is moved aside first and removed after), on failure everything is removed."""
    target = Path(path)
    with _staging_folder(target) as private:
        written = private / target.name
        yield written
        if not written.is_dir():
            raise FileNotFoundError(f"nothing was written at {written}")
        if target.exists():
            os.replace(target, private / ".previous")
        os.replace(written, target)


@contextlib.contextmanager
def atomic_files(path: str | os.PathLike[str], companions: Sequence[str] = ()) -> Iterator[Path]:
    """``atomic_path`` for a file that comes with companions named after it (``model.xml`` and its ``model.bin``:
    ``companions=(".bin",)``). Yields ``path``'s name in a hidden folder beside it, where the writer puts the file and
    its companions; on success the companions take their names first and the file last (a reader that finds the file
    finds them complete), on failure nothing is left."""
    target = Path(path)
    with _staging_folder(target) as folder:
        staged = folder / target.name
        yield staged
        for suffix in (*companions, None):
            source, final = (staged, target) if suffix is None else (staged.with_suffix(suffix), target.with_suffix(suffix))
            with open(source, "rb+") as f:
                os.fsync(f.fileno())
            os.chmod(source, 0o666 & ~_umask())
            os.replace(source, final)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write text to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def check_writable(path: str | os.PathLike[str], *, folder: bool = False) -> None:
    """One clear line, before any work, when ``path`` (a file, or a ``folder``) cannot be created or written there."""
    from mobilenetv2.errors import UserError

    target = Path(path)
    if target.exists() and target.is_dir() != folder:
        raise UserError(f"{target} is {'a file' if folder else 'a folder'}; give {'a folder' if folder else 'a file path'}")
    existing = target if folder else target.parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"cannot create {target}: {existing} is a file")
    # The folder must take new files (write + search); an existing file must be writable (not its execute bit).
    blocked = existing if not os.access(existing, os.W_OK | os.X_OK) else (
        target if target.is_file() and not os.access(target, os.W_OK) else None)
    if blocked is not None:
        raise UserError(f"cannot write {target}: no write permission on {blocked}")


LOCK_NAME = ".mobilenetv2.lock"


class FolderLock:
    """An advisory lock (``fcntl.flock``) on ``LOCK_NAME`` inside ``folder``, holding the owner's PID and what it is.
    The kernel releases it when its holder exits, however it dies (kill -9 included): a stale lock file is taken over."""

    def __init__(self, folder: str | os.PathLike[str], what: str = "mobilenetv2 process") -> None:
        self.folder, self.what = Path(folder), what
        self.fd: int | None = None
        self.created = False  # the folder was made for this lock: removed on release if nothing else was written

    def acquire(self) -> FolderLock:
        """Take the lock, or raise a ``UserError`` naming the holder's PID (the folder is left as it is)."""
        import fcntl

        from mobilenetv2.errors import UserError

        self.created = not self.folder.exists()
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid, _, holder = os.pread(fd, 200, 0).decode(errors="replace").strip().partition(" ")
            os.close(fd)
            raise UserError(f"{self.folder} is in use by {holder or 'another process'} (PID {pid or 'unknown'}); wait for "
                            "it to end, or choose another folder") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {self.what}\n".encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            if self.created and os.listdir(self.folder) == [LOCK_NAME]:
                (self.folder / LOCK_NAME).unlink()
                self.folder.rmdir()
            os.close(self.fd)  # closing the descriptor releases the lock
            self.fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
