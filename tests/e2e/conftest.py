"""pytest fixtures for the end-to-end tests (run with /usr/bin/python3 -m pytest tests/e2e).

Environment: CKPT_BIN (default build/ckpt) picks the binary under test.
"""

import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ckpt_testlib import (  # noqa: E402,F401  (re-exported for the tests)
    REPO_ROOT, assert_same_objects, canonical_pickle, ckpt_bin, compare_zip_layouts,
    diff_canonical, json_numbers, json_strings, pickle_of, read_zip_records, run_ckpt,
    torch_resave, weights_only_problems, write_torch_zip, zip_layout,
)

MAKE_FIXTURES = os.path.join(REPO_ROOT, "tests", "fixtures", "make_fixtures.py")
MANIFEST_FILE = "manifest.json"


def _manifest_entries():
    """The fixture list, read from make_fixtures.py without running torch."""
    sys.path.insert(0, os.path.dirname(MAKE_FIXTURES))
    try:
        import make_fixtures  # noqa: E402
    finally:
        sys.path.pop(0)
    keys = ("name", "file", "kind", "layout", "state", "description")
    return [dict(zip(keys, row)) for row in make_fixtures.FIXTURES]


FIXTURE_ENTRIES = _manifest_entries()


def fixture_params(predicate=lambda entry: True):
    """pytest.param per fixture entry matching `predicate`, named by fixture."""
    return [pytest.param(e, id=e["name"]) for e in FIXTURE_ENTRIES if predicate(e)]


@pytest.fixture(scope="session")
def ckpt():
    """Path to the ckpt binary; the session fails early if it does not exist."""
    path = ckpt_bin()
    if not os.access(path, os.X_OK):
        pytest.fail(f"ckpt binary not found at {path} (set CKPT_BIN or build it first)")
    return path


@pytest.fixture(scope="session")
def fixtures_dir(tmp_path_factory):
    """Runs make_fixtures.py once per session into a temporary folder."""
    outdir = tmp_path_factory.mktemp("fixtures")
    subprocess.run([sys.executable, MAKE_FIXTURES, str(outdir)], check=True,
                   capture_output=True, stdin=subprocess.DEVNULL)
    return outdir


@pytest.fixture(scope="session")
def manifest(fixtures_dir):
    with open(fixtures_dir / MANIFEST_FILE) as f:
        return {e["name"]: e for e in json.load(f)["fixtures"]}


@pytest.fixture
def fixture_path(fixtures_dir):
    """fixture_path(entry_or_name) -> path of that generated fixture."""
    by_name = {e["name"]: e for e in FIXTURE_ENTRIES}

    def path_of(entry):
        if isinstance(entry, str):
            entry = by_name[entry]
        return fixtures_dir / entry["file"]
    return path_of


def pytest_configure(config):
    # tests/e2e/test_large.py: a > 4 GiB checkpoint; deselect with -m "not large".
    config.addinivalue_line("markers", "large: writes and loads a checkpoint over 4 GiB (minutes)")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "large: writes multi-GiB files (deselect with -m 'not large')")
