"""`mobilenetv2 tune --storage postgresql://...` against a real PostgreSQL server started on a loopback port."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from optuna.trial import TrialState

from mobilenetv2.errors import UserError
from mobilenetv2.extras import MissingExtraError
from mobilenetv2.tuning.study import driver_url, open_storage

SUPERUSER = "mobilenetv2"


def server_binaries() -> Path | None:
    """The newest Debian PostgreSQL's bin folder (/usr/lib/postgresql/N/bin), or one on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


def install_server() -> Path:
    """``apt-get install postgresql`` (as root, no prompt), or skip with the reason."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("PostgreSQL server binaries not found, and apt-get cannot install them here (needs root and apt)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "postgresql"]):
        done = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
            pytest.skip(f"PostgreSQL server not installed: `{' '.join(cmd)}` failed: {last}")
    return server_binaries() or pytest.skip("`apt-get install postgresql` gave no initdb under /usr/lib/postgresql")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throw-away PostgreSQL server (trust auth, 127.0.0.1 only, socket in its own folder) with an empty
    database; stopped and removed after the session, also when a test fails."""
    pytest.importorskip("psycopg", reason="the PostgreSQL driver comes with pip install 'mobilenetv2[tune]'")
    bin_dir = server_binaries() or install_server()
    # PostgreSQL refuses to run as root: as root, run it as Debian's `postgres` user in a folder it owns.
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="mobilenetv2-pg-"))
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the PostgreSQL server as")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, log = folder / "data", folder / "server.log"

    def run(*cmd: str) -> None:
        done = subprocess.run([*as_user, *cmd], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            tail = log.read_text()[-2000:] if log.is_file() else ""
            raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stdout}{done.stderr}{tail}")

    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--no-sync")
        port = free_port()
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off -c max_connections=40"
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
        try:
            run(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", SUPERUSER, "tune")
            yield f"postgresql://{SUPERUSER}@127.0.0.1:{port}/tune"
        finally:
            run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def tune_worker(url: str, space: Path, out: Path) -> subprocess.Popen:
    """One `mobilenetv2 tune` process (the venv's CLI) at the tiniest training settings on the built-in digits."""
    cli = Path(sys.executable).parent / "mobilenetv2"
    argv = [str(cli), "tune", "--storage", url, "--study", "shared", "--space", str(space), "--sampler", "grid",
            "--pruner", "none", "--out", str(out), "--no-plots", "--epochs", "1", "--width-mult", "0.35",
            "--input-size", "32", "--batch-size", "16", "--limit-batches", "1", "--val-split", "0.05", "--workers", "0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # two workers on a 2-core machine
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_plain_url_names_the_psycopg_driver():
    pytest.importorskip("psycopg")
    assert driver_url("postgresql://u:p@host/db") == "postgresql+psycopg://u:p@host/db"
    assert driver_url("postgres://u@host:5433/db") == "postgresql+psycopg://u@host:5433/db"
    assert driver_url("postgresql+psycopg2://u@host/db") == "postgresql+psycopg2://u@host/db"
    assert driver_url("sqlite:///x.db") == "sqlite:///x.db"


def test_plain_url_falls_back_to_psycopg2_when_only_it_is_installed(monkeypatch):
    from mobilenetv2.tuning import study

    monkeypatch.setattr(study, "available", lambda module: module == "psycopg2")
    assert driver_url("postgresql://u:p@host/db") == "postgresql+psycopg2://u:p@host/db"


def test_missing_driver_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg now fails as if it were not installed
    monkeypatch.setitem(sys.modules, "psycopg2", None)
    with pytest.raises(MissingExtraError) as info:
        open_storage("postgresql://user:secret@127.0.0.1:9/db")
    message = str(info.value)
    assert message.startswith("cannot open storage 'postgresql://user:***@127.0.0.1:9/db': psycopg is not installed")
    assert "pip install 'mobilenetv2[tune]'" in message and "\n" not in message and "secret" not in message


def test_unreachable_server_is_one_line_without_sqlalchemy_noise():
    pytest.importorskip("psycopg")
    with socket.socket() as s:  # a loopback port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        with pytest.raises(UserError) as info:
            open_storage(f"postgresql://user:secret@127.0.0.1:{port}/db")
    message = str(info.value)
    assert message.startswith(f"cannot open storage 'postgresql://user:***@127.0.0.1:{port}/db': connection failed")
    assert "Connection refused" in message and "\n" not in message and "secret" not in message
    assert "OperationalError" not in message and "sqlalche.me" not in message


@pytest.mark.slow
def test_two_workers_share_one_postgres_study(postgres_url, tmp_path):
    lrs = [0.01, 0.03, 0.1, 0.3]
    space = tmp_path / "space.yaml"
    space.write_text(f"lr: {lrs}\n")
    outs = [tmp_path / "machine_a", tmp_path / "machine_b"]  # as on two machines: one results folder each
    workers = [tune_worker(postgres_url, space, out) for out in outs]
    logs = [w.communicate(timeout=240)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], "\n".join(logs)

    study = open_storage(postgres_url)
    trials = [t for t in study.get_all_trials(study.get_study_id_from_name("shared")) if t.params]
    assert all(t.state == TrialState.COMPLETE for t in trials), [t.state for t in trials]
    numbers = [t.number for t in trials]
    assert len(trials) == len(lrs) and len(set(numbers)) == len(numbers)  # none lost, none counted twice
    assert sorted(t.params["lr"] for t in trials) == lrs  # every grid point exactly once
    ran = [{int(p.name[len("trial_"):]) for p in (out / "trials").glob("trial_*")} for out in outs]
    assert ran[0] and ran[1] and not ran[0] & ran[1] and ran[0] | ran[1] == set(numbers), (ran, logs)
