"""Other libraries' warnings that mean nothing to a user (JAX's os.fork, ...) are hidden by default, shown with -v."""

from __future__ import annotations

import subprocess
import sys
import warnings

from mobilenetv2.console import setup_logging

FORK = ("os.fork() was called. os.fork() is incompatible with multithreaded code, and JAX is multithreaded, so this "
        "will likely lead to a deadlock.")


def shown(module: str, message: str, category: type[Warning]) -> bool:
    with warnings.catch_warnings(record=True) as caught:
        warnings.warn_explicit(message, category, f"{module}.py", 1, module=module, registry={})
    return bool(caught)


def test_noise_hidden_by_default_and_shown_with_verbose():
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        setup_logging(0)
        assert not shown("jax._src.interpreters", FORK, RuntimeWarning)
        assert not shown("os", FORK, RuntimeWarning)
        assert not shown("tensorflow.python.x", "something", UserWarning)
        assert not shown("torch.onnx", "old API", DeprecationWarning)
        assert shown("mobilenetv2.cli", "ours", UserWarning) and shown("torch.nn", "a user warning", UserWarning)
        setup_logging(1)
        assert shown("jax._src.interpreters", FORK, RuntimeWarning)
        assert shown("torch.onnx", "old API", DeprecationWarning)
        setup_logging(0)


def test_a_command_prints_no_fork_warning_unless_verbose(tmp_path):
    script = ("import sys, warnings\nfrom mobilenetv2.cli import main\nimport mobilenetv2.cli.info as info\n"
              "def run(args):\n    warnings.warn_explicit(FORK, RuntimeWarning, 'jax.py', 1, module='jax._src.x')\n"
              "    return 0\ninfo.run = run\nsys.exit(main(sys.argv[2:]))\n").replace("FORK", repr(FORK))
    for extra, expected in (([], False), (["-v"], True)):
        done = subprocess.run([sys.executable, "-c", script, "x", *extra, "info", "--model", "mobilenet_v2"],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert ("os.fork() was called" in done.stderr) is expected, done.stderr
