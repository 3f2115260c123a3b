"""A full disk, for real: `ckpt rewrite` and `ckpt edit` under `ulimit -f` (RLIMIT_FSIZE)
with SIGXFSZ ignored, so every write past the limit fails with EFBIG. Each must exit 2
with one `ckpt: error: ...` line, leave no output or temporary file, and leave the input
byte-identical. (--in-place has its own fault tests.)
"""

import os
import resource
import shutil
import signal
import subprocess

import pytest

from conftest import REPO_ROOT, ckpt_bin

EXAMPLE = os.path.join(REPO_ROOT, "examples", "musicgen_tiny_training.th")


def limited(max_bytes):
    def setup():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))
    return setup


COMMANDS = {
    "rewrite": ["rewrite", "{inp}", "-o", "{out}"],
    "edit": ["edit", "{inp}", "-o", "{out}", "optim.lr=0.5", "--drop", "*.bias"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("limit", [0, 1, 4096, 65536, 200_000, 300_000])
def test_file_size_limit(ckpt, tmp_path, command, limit):
    inp = tmp_path / "in.th"
    shutil.copyfile(EXAMPLE, inp)
    before = inp.read_bytes()
    out = tmp_path / "out.th"
    args = [a.format(inp=inp, out=out) for a in COMMANDS[command]]
    result = subprocess.run([ckpt_bin(), *args], capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL, cwd=tmp_path, preexec_fn=limited(limit))
    assert result.returncode == 2, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    errors = [x for x in lines if x.startswith("ckpt: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    assert "File too large" in errors[0], errors[0]
    assert sorted(os.listdir(tmp_path)) == ["in.th"], os.listdir(tmp_path)
    assert inp.read_bytes() == before


@pytest.mark.parametrize("command", list(COMMANDS))
def test_enough_room_succeeds(ckpt, tmp_path, command):
    """The same runs with room to spare write the output (the limit is what failed)."""
    inp = tmp_path / "in.th"
    shutil.copyfile(EXAMPLE, inp)
    out = tmp_path / "out.th"
    args = [a.format(inp=inp, out=out) for a in COMMANDS[command]]
    result = subprocess.run([ckpt_bin(), *args], capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL, cwd=tmp_path, preexec_fn=limited(16 << 20))
    assert result.returncode == 0, result.stderr
    assert out.exists() and sorted(os.listdir(tmp_path)) == ["in.th", "out.th"]
