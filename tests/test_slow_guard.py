"""The slow guard of tests/conftest.py: a test not marked slow whose call runs too long fails and names the marker."""

from __future__ import annotations

from pathlib import Path

CONFTEST = Path(__file__).with_name("conftest.py")
MADE_UP = '''
import time

import pytest


def test_quick():
    pass


def test_dawdles():
    time.sleep(0.5)


@pytest.mark.slow
def test_dawdles_but_is_marked():
    time.sleep(0.5)
'''


def run_made_up_tests(pytester, monkeypatch, **env: str):
    """The three tests above, under this suite's conftest with the guard's limit at 10 ms (stretched by the load; set in
    the copy, as the environment would stretch the limit of the test that runs them too)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MOBILENETV2_SLOW_GUARD_S", raising=False)
    conftest = CONFTEST.read_text()
    assert "\nSLOW_GUARD_S = 15.0\n" in conftest
    pytester.makeconftest(conftest.replace("\nSLOW_GUARD_S = 15.0\n", "\nSLOW_GUARD_S = 0.01\n"))
    pytester.makeini("[pytest]\nmarkers =\n    slow: slow\n")
    pytester.makepyfile(test_made_up=MADE_UP)
    return pytester.runpytest_inprocess("-p", "no:cacheprovider")


def test_an_unmarked_slow_test_fails_and_names_the_marker(pytester, monkeypatch):
    result = run_made_up_tests(pytester, monkeypatch)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*test_dawdles took * s (over * s) and is not marked slow: add @pytest.mark.slow*"])


def test_the_guard_is_off_when_asked(pytester, monkeypatch):
    run_made_up_tests(pytester, monkeypatch, MOBILENETV2_NO_SLOW_GUARD="1").assert_outcomes(passed=3)
