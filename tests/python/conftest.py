"""pytest fixtures for the Python package's tests (tests/python).

Run with the package importable (installed, or PYTHONPATH=DIR of
`pip install --target DIR`), under torch 2.x, Debian's torch 1.13, or an
environment with numpy only (tests needing torch or omegaconf skip there).

Environment: CKPT_FIXTURES, a folder tests/fixtures/make_fixtures.py wrote
(the run without torch cannot make one); otherwise the session makes its own
when torch is importable.
"""

import importlib.util
import os
import subprocess
import sys

import pytest

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MAKE_FIXTURES = os.path.join(REPO_ROOT, "tests", "fixtures", "make_fixtures.py")
EXAMPLE = os.path.join(REPO_ROOT, "examples", "musicgen_tiny_training.th")

HAVE_TORCH = importlib.util.find_spec("torch") is not None
HAVE_OMEGACONF = importlib.util.find_spec("omegaconf") is not None
needs_torch = pytest.mark.skipif(not HAVE_TORCH, reason="torch is not installed")
needs_omegaconf = pytest.mark.skipif(not HAVE_OMEGACONF, reason="omegaconf is not installed")


def fixture_entries():
    """make_fixtures.FIXTURES as dicts, read without running torch."""
    sys.path.insert(0, os.path.dirname(MAKE_FIXTURES))
    try:
        spec = importlib.util.spec_from_file_location("_fixture_list", MAKE_FIXTURES)
        source = open(MAKE_FIXTURES).read()
        start = source.index("FIXTURES = [")
        end = source.index("\n]\n", start) + 3
        namespace = {}
        exec(compile(source[start:end], spec.origin, "exec"), namespace)  # the list literal only
    finally:
        sys.path.pop(0)
    keys = ("name", "file", "kind", "layout", "state", "description")
    return [dict(zip(keys, row)) for row in namespace["FIXTURES"]]


FIXTURE_ENTRIES = fixture_entries()


@pytest.fixture(scope="session")
def fixtures_dir(tmp_path_factory):
    given = os.environ.get("CKPT_FIXTURES")
    if given:
        return given
    if not HAVE_TORCH:
        pytest.skip("no torch to make fixtures with and CKPT_FIXTURES not set")
    outdir = tmp_path_factory.mktemp("fixtures")
    subprocess.run([sys.executable, MAKE_FIXTURES, str(outdir)], check=True,
                   capture_output=True, stdin=subprocess.DEVNULL)
    return str(outdir)


@pytest.fixture(scope="session")
def ckpt_command():
    """The ckpt executable installed with the package."""
    from ckpt._command import command_path
    return command_path()


def cli_error(ckpt_command, *args):
    """The message `ckpt ARGS` prints after 'ckpt: error: ' (exit 2)."""
    r = subprocess.run([ckpt_command, *map(str, args)], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 2, r
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("ckpt: error: "), line
    return line[len("ckpt: error: "):]
