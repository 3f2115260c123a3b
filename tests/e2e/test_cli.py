"""End-to-end tests of the CLI's comfort: help with a worked example per
command, bash completion and the man page generated from the command
definitions, and the progress bar (only on a terminal, silenced by --quiet).
"""

import os
import pty
import re
import select
import shutil
import subprocess

import pytest

from conftest import ckpt_bin, run_ckpt
from test_foundation import assert_usage_error, ok


def command_names():
    """The commands `ckpt --help` lists."""
    text = ok(run_ckpt("--help"))
    section = text.split("Subcommands:\n", 1)[1].split("\n\n", 1)[0]
    return [m.group(1) for m in re.finditer(r"^ {2}(\S+) ", section, re.M)]


def test_help_lists_commands_and_points_to_examples(ckpt):
    names = command_names()
    for expected in ("info", "edit", "safetensors", "from-safetensors", "help", "completion", "man"):
        assert expected in names
    assert "ckpt help COMMAND" in ok(run_ckpt("--help"))
    assert ok(run_ckpt("help")) == ok(run_ckpt("--help"))


@pytest.mark.parametrize("name", [n for n in ("info", "ls", "tensors", "verify", "cfg", "rewrite",
                                              "edit", "export", "wrap", "bundle", "sanitize",
                                              "safetensors", "from-safetensors", "help",
                                              "completion", "man")])
def test_every_command_help_shows_an_example(ckpt, name):
    via_flag = ok(run_ckpt(name, "--help"))
    via_help = ok(run_ckpt("help", name))
    assert via_flag == via_help
    assert "Example:" in via_help
    example = via_help.split("Example:", 1)[1]
    assert f"$ ckpt {name}" in example or (name == "completion" and "ckpt completion" in example)


def test_all_listed_commands_have_examples(ckpt):
    for name in command_names():
        assert "Example:" in ok(run_ckpt("help", name)), f"{name} has no example"


def test_help_unknown_command(ckpt):
    assert_usage_error(run_ckpt("help", "frobnicate"), "frobnicate")


# ---------------------------------------------------------------- completion

def complete(words, cword):
    """COMPREPLY of the generated bash completion for COMP_WORDS=words."""
    script = ok(run_ckpt("completion", "bash"))
    quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
    program = (f'source /dev/stdin <<\'CKPT_EOF\'\n{script}\nCKPT_EOF\n'
               f'COMP_WORDS=({quoted}); COMP_CWORD={cword}; _ckpt; echo "${{COMPREPLY[@]}}"')
    result = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_completion_script_is_valid_bash(ckpt, tmp_path):
    script = tmp_path / "ckpt.bash"
    script.write_text(ok(run_ckpt("completion", "bash")))
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_completion_as_the_brief_runs_it(ckpt):
    program = (f"source <({ckpt_bin()} completion bash); COMP_WORDS=(ckpt in); COMP_CWORD=1; _ckpt; "
               "echo ${COMPREPLY[@]}")
    result = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=30)
    assert result.stdout.split() == ["info"], result.stderr


def test_completion_commands_and_options(ckpt):
    assert complete(["ckpt", "in"], 1) == ["info"]
    assert sorted(complete(["ckpt", "from"], 1)) == ["from-safetensors", "from-transformers"]
    assert set(complete(["ckpt", ""], 1)) >= {"info", "edit", "safetensors", "man", "--help"}
    assert complete(["ckpt", "edit", "x.th", "--dro"], 3) == ["--drop"]
    assert set(complete(["ckpt", "safetensors", "--"], 2)) >= {"--output", "--state", "--force", "--quiet"}
    assert complete(["ckpt", "from-safetensors", "x", "--in"], 3) == ["--into"]
    # After an option that takes a value: files (readline's default), no options.
    assert complete(["ckpt", "safetensors", "-o", ""], 3) == []
    assert complete(["ckpt", "help", "sa"], 2) == ["sanitize", "safetensors"] or \
        sorted(complete(["ckpt", "help", "sa"], 2)) == ["safetensors", "sanitize"]
    assert complete(["ckpt", "completion", ""], 2) == ["bash", "zsh", "fish"]


def test_completion_needs_a_known_shell(ckpt):
    result = run_ckpt("completion", "tcsh")
    assert result.returncode == 2


# ---------------------------------------------------------------- man page

def test_man_page_renders_without_warnings(ckpt):
    page = ok(run_ckpt("man"))
    assert page.startswith(".\\\"") and "\n.TH CKPT 1 " in page
    for name in command_names():
        assert '.SS "ckpt ' + name.replace("-", "\\-") in page, name
    if not shutil.which("groff"):
        pytest.skip("groff not installed")
    result = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z"], input=page,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    text = subprocess.run(["groff", "-man", "-Tutf8"], input=page, capture_output=True,
                          text=True, timeout=60).stdout
    plain = re.sub(".\b", "", text)
    assert "from-safetensors" in plain and "EXIT STATUS" in plain
    assert "$ ckpt edit examples/musicgen_tiny_training.th -o init.th" in plain


def test_man_page_with_man(ckpt):
    if not shutil.which("man"):
        pytest.skip("man not installed")
    page = ok(run_ckpt("man"))
    result = subprocess.run(["man", "-l", "-"], input=page, capture_output=True, text=True,
                            timeout=60, env={**os.environ, "MANPAGER": "cat", "PAGER": "cat",
                                             "MANWIDTH": "100"})
    assert result.returncode == 0, result.stderr
    assert "ckpt safetensors" in re.sub(".\b", "", result.stdout)


# ---------------------------------------------------------------- progress

def run_on_terminal(args, env_extra):
    """Runs ckpt with stderr on a pseudo-terminal; returns (exit code, terminal text)."""
    master, slave = pty.openpty()
    env = {**os.environ, **env_extra}
    proc = subprocess.Popen([ckpt_bin(), *map(str, args)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 30)
        if not ready:
            break
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=30), b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.parametrize("command", [["rewrite"], ["safetensors"], ["export"]])
def test_progress_bar_on_a_terminal_only(ckpt, fixture_path, tmp_path, command):
    src = fixture_path("training")
    out = tmp_path / ("out.safetensors" if command == ["safetensors"] else "out.bin")
    # Small files stay silent even on a terminal (the default threshold is 256 MB).
    code, text = run_on_terminal([*command, src, "-o", out], {})
    assert code == 0 and "[" not in text.replace("[0m", ""), text
    out.unlink()
    # With the threshold lowered, the bar appears, reaches 100% and is cleared.
    code, text = run_on_terminal([*command, src, "-o", out], {"CKPT_PROGRESS_MIN_BYTES": "0"})
    assert code == 0
    assert "100%" in text and "writing " in text and "\x1b[K" in text, repr(text)
    out.unlink()
    # --quiet silences it.
    code, text = run_on_terminal([*command, src, "-o", out, "-q"], {"CKPT_PROGRESS_MIN_BYTES": "0"})
    assert code == 0 and text == "", repr(text)
    out.unlink()
    # Not a terminal: nothing but the summary.
    result = run_ckpt(*command, src, "-o", out)
    assert "%" not in result.stderr
