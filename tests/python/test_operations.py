"""The operations as functions: results as data, outputs checked by reading
them back (ckpt.open, and torch where installed), errors as the CLI words
them, and Ctrl-C during a write leaving no temporary file."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import EXAMPLE, cli_error, needs_omegaconf, needs_torch

import ckpt


def write_safetensors(path, tensors):
    """A .safetensors file written by hand from numpy arrays (float32)."""
    header, offset, blobs = {}, 0, []
    for name, arr in tensors.items():
        data = np.ascontiguousarray(arr, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text)
        for blob in blobs:
            f.write(blob)


def test_edit_overrides_and_drop(tmp_path):
    out = tmp_path / "init.th"
    r = ckpt.edit(EXAMPLE, out, overrides=["optim.lr=1e-5", "++dataset.train.path=/data/ft"],
                  drop="condition_provider.*")
    assert isinstance(r, ckpt.EditResult)
    assert sorted(r.config_changes) == ["dataset.train.path: (absent) -> '/data/ft'", "optim.lr: 1 -> 1e-05"]
    (state,) = r.states
    assert state.path == "best_state/model" and state.before == 36 and len(state.dropped) == 2
    assert r.bytes == os.path.getsize(out)
    with ckpt.open(out) as c:
        assert c.cfg_dict()["optim"]["lr"] == 1e-5
        assert c.cfg_dict()["dataset"]["train"]["path"] == "/data/ft"
        assert not [k for k in c.keys() if k.startswith("condition_provider.")]
        assert len(c.keys()) == 34


def test_edit_in_place_and_dtype(tmp_path):
    path = tmp_path / "c.th"
    ckpt.rewrite(EXAMPLE, path)
    r = ckpt.edit(path, in_place=True, overrides=["optim.epochs=50"])
    assert r.in_place.appended is True and r.bytes == os.path.getsize(path)
    r = ckpt.edit(path, tmp_path / "bf16.th", dtype="bfloat16")
    assert r.dtype.dtype == "bfloat16" and r.dtype.converted > 0
    with ckpt.open(tmp_path / "bf16.th") as c:
        assert {t.dtype for t in c.tensors()} == {"bfloat16"}
        assert c.cfg_dict()["optim"]["epochs"] == 50


def test_dry_run_takes_none_for_the_output(tmp_path):
    # As the CLI's `edit -n` needs no -o; None was "out: expected a string".
    r = ckpt.edit(EXAMPLE, None, overrides=["optim.lr=1e-5"], drop="condition_provider.*", dry_run=True)
    assert r.config_changes == ["optim.lr: 1 -> 1e-05"] and r.bytes > 0
    assert not os.listdir(tmp_path)


def test_edit_that_does_nothing_is_refused(tmp_path):
    with pytest.raises(ckpt.UsageError):
        ckpt.edit(EXAMPLE, tmp_path / "x.th", drop="no.such.key*")
    assert not os.listdir(tmp_path)


def test_existing_output_needs_force(tmp_path, ckpt_command):
    out = tmp_path / "sd.bin"
    out.write_bytes(b"keep me")
    with pytest.raises(ckpt.UsageError) as e:
        ckpt.export(EXAMPLE, out)
    # The CLI's message, with the Python way out in place of the flag.
    assert str(e.value) == cli_error(ckpt_command, "export", EXAMPLE, "-o", out).replace("--force", "force=True")
    assert "force=True" in str(e.value)
    assert out.read_bytes() == b"keep me"
    assert ckpt.export(EXAMPLE, out, force=True).exported_from == "best_state/model"


def test_a_read_only_file_is_refused_as_the_command_refuses_it(tmp_path, ckpt_command):
    # force=True and in_place=True replaced or changed a chmod 0444 file (through the rename).
    ro = tmp_path / "ro.th"
    ro.write_bytes(open(EXAMPLE, "rb").read())
    os.chmod(ro, 0o444)
    before = ro.read_bytes()
    for call, args in [(lambda: ckpt.compact(ro), ["compact", ro]),
                       (lambda: ckpt.edit(ro, in_place=True, overrides=["optim.lr=1e-5"]),
                        ["edit", ro, "--in-place", "optim.lr=1e-5"]),
                       (lambda: ckpt.rewrite(EXAMPLE, ro, force=True), ["rewrite", EXAMPLE, "-o", ro, "--force"])]:
        with pytest.raises(ckpt.UsageError) as e:
            call()
        assert str(e.value) == cli_error(ckpt_command, *args)
        assert f"{ro} is read-only" in str(e.value) and f"chmod u+w {ro}" in str(e.value)
    assert ro.read_bytes() == before and os.stat(ro).st_mode & 0o777 == 0o444
    assert sorted(os.listdir(tmp_path)) == ["ro.th"]


def test_stats_show_and_diff_check_the_crc_of_what_they_read(tmp_path, ckpt_command):
    import zipfile
    data = bytearray(open(EXAMPLE, "rb").read())
    entry = max(ckpt.tensors(EXAMPLE), key=lambda r: r.nbytes)  # a tensor of the best state; its record
    info = next(i for i in zipfile.ZipFile(EXAMPLE).infolist() if i.filename.endswith("/data/" + entry.storage))
    start = info.header_offset + 30 + int.from_bytes(data[info.header_offset + 26:info.header_offset + 28], "little") \
        + int.from_bytes(data[info.header_offset + 28:info.header_offset + 30], "little")
    data[start + info.file_size - 1] ^= 0x40
    bad = tmp_path / "bad.th"
    bad.write_bytes(bytes(data))
    name = entry.name
    for call, args in [(lambda: ckpt.stats(bad), ["stats", bad]), (lambda: ckpt.show(bad, name), ["show", bad, name]),
                       (lambda: ckpt.diff(EXAMPLE, bad), ["diff", EXAMPLE, bad])]:
        with pytest.raises(ckpt.FormatError) as e:
            call()
        assert str(e.value) == cli_error(ckpt_command, *args).replace("--ignore-crc", "ignore_crc=True")
        assert "fails its CRC-32 check" in str(e.value) and "ignore_crc=True" in str(e.value)
    assert len(ckpt.stats(bad, ignore_crc=True)) == len(ckpt.tensors(bad))
    assert ckpt.show(bad, name, ignore_crc=True).name == name
    assert [t.name for t in ckpt.diff(EXAMPLE, bad, ignore_crc=True).tensors.values] == [name]


def test_export_wrap_bundle(tmp_path):
    exported = tmp_path / "state_dict.bin"
    ckpt.export(EXAMPLE, exported)
    with ckpt.open(exported) as c:
        assert c.layout == "audiocraft-exported" and c.best_state == "best_state"
    wrapped = tmp_path / "checkpoint.th"
    ckpt.wrap(exported, wrapped)
    with ckpt.open(wrapped) as c:
        assert c.layout == "audiocraft-training"
    r = ckpt.bundle(EXAMPLE, tmp_path / "bundle")
    assert sorted(os.listdir(tmp_path / "bundle")) == ["compression_state_dict.bin", "state_dict.bin"]
    assert r.compression_pretrained and r.compression_from_config == "//pretrained/facebook/encodec_32khz"


@needs_torch
@needs_omegaconf
def test_sanitize_output_loads_with_weights_only(tmp_path):
    import torch
    if int(torch.__version__.split(".")[0]) < 2:
        pytest.skip("torch 1.13's weights_only unpickler lacks opcodes torch.save uses (BINFLOAT)")
    out = tmp_path / "safe.th"
    r = ckpt.sanitize(EXAMPLE, out)
    assert r.written and r.refused == []
    loaded = torch.load(out, weights_only=True)
    assert isinstance(loaded["xp.cfg"], str)


def test_scan_and_verify(tmp_path):
    s = ckpt.scan(EXAMPLE)
    assert s.verdict == "safe" and s.container == "zip" and all(g.allowed for g in s.globals)
    assert any(g.module == "omegaconf.dictconfig" for g in s.globals)
    assert ckpt.verify(EXAMPLE).ok
    from test_load import _unsafe_pickle
    bad = ckpt.scan(_unsafe_pickle(tmp_path))
    assert bad.verdict == "unsafe"
    assert [f"{g.module}.{g.name}" for g in bad.globals if not g.allowed] == ["test_load.NotAllowed"]


def test_diff_and_stats(tmp_path):
    assert ckpt.diff(EXAMPLE, EXAMPLE).equal
    out = tmp_path / "e.th"
    ckpt.edit(EXAMPLE, out, overrides=["optim.lr=2"], drop="emb.0.*")
    d = ckpt.diff(EXAMPLE, out)
    assert not d.equal and d.tensors.only_in_a == ["emb.0.weight"] and "lr" in d.config.diff
    rows = ckpt.stats(EXAMPLE, match="emb.*")
    assert rows and all(r.name.startswith("emb.") for r in rows)
    with ckpt.open(EXAMPLE) as c:
        for row in rows:
            values = c.get_tensor(row.name).astype(np.float64)
            assert row.numel == values.size
            assert row.min == values.min() and row.max == values.max()
            assert row.mean == pytest.approx(values.mean(), rel=1e-12)


@pytest.mark.parametrize("option,value,shown", [("atol", -1, "-1.0"), ("rtol", -1e-300, "-1e-300"),
                                                ("atol", float("inf"), "inf"), ("rtol", float("nan"), "nan")])
def test_diff_refuses_a_tolerance_below_0_or_not_finite(ckpt_command, option, value, shown):
    # The api's check (api::diff), as the command's --atol/--rtol: one message for both.
    with pytest.raises(ckpt.UsageError) as e:
        ckpt.diff(EXAMPLE, EXAMPLE, **{option: value})
    assert str(e.value) == f"{option} {shown}: must be a number >= 0 (finite; e.g. 1e-3)"
    assert str(e.value) == cli_error(ckpt_command, "diff", EXAMPLE, EXAMPLE, f"--{option}={value}").replace(
        f"--{option}", option)
    assert ckpt.diff(EXAMPLE, EXAMPLE, **{option: 0.0}).equal


def test_safetensors_round_trip(tmp_path):
    st = tmp_path / "model.safetensors"
    r = ckpt.to_safetensors(EXAMPLE, st)
    assert r.tensors == 36 and r.state == "best_state/model"
    back = tmp_path / "finetuned.th"
    r = ckpt.from_safetensors(st, back, into=EXAMPLE)
    assert r.replaced == 36
    assert ckpt.diff(EXAMPLE, back).equal


# Python's Ctrl-C handler installed explicitly: a child of a background job
# starts with SIGINT ignored, and Python then keeps it ignored.
_INTERRUPTED_WRITE = r"""
import signal, sys, ckpt
signal.signal(signal.SIGINT, signal.default_int_handler)
print("start", flush=True)
ckpt.edit(sys.argv[1], sys.argv[2], dtype="float16")
print("finished", flush=True)
"""


def test_keyboard_interrupt_leaves_no_temporary(tmp_path):
    src_dir = tmp_path / "src"
    src_dir.mkdir()
    st = src_dir / "big.safetensors"
    rng = np.random.default_rng(0)
    write_safetensors(st, {f"layer.{i}.weight": rng.standard_normal((128, 128), dtype=np.float32)
                           for i in range(2000)})  # 128 MiB in 2,000 storages
    big = src_dir / "big.th"
    ckpt.from_safetensors(st, big)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    interrupted = False
    for delay in (0.2, 0.1, 0.05, 0.02, 0.0):
        out = out_dir / "half.th"
        p = subprocess.Popen([sys.executable, "-c", _INTERRUPTED_WRITE, str(big), str(out)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
        assert p.stdout.readline() == "start\n"
        time.sleep(delay)
        p.send_signal(signal.SIGINT)
        stdout, stderr = p.communicate(timeout=120)
        if os.path.exists(out):  # the write won the race (finished, or renamed just before): again, sooner
            assert os.listdir(out_dir) == ["half.th"]
            os.remove(out)
            continue
        assert "KeyboardInterrupt" in stderr, stderr
        assert os.listdir(out_dir) == []  # neither the output nor a temporary
        interrupted = True
        break
    assert interrupted, "every write finished before Ctrl-C arrived"


def test_python_m_ckpt_runs_the_command(ckpt_command):
    r = subprocess.run([sys.executable, "-m", "ckpt", "info", EXAMPLE], capture_output=True, text=True)
    assert r.returncode == 0 and "audiocraft-training" in r.stdout
    assert r.stdout == subprocess.run([ckpt_command, "info", EXAMPLE], capture_output=True, text=True).stdout
    r = subprocess.run([sys.executable, "-m", "ckpt", "verify", "/nonexistent.th"], capture_output=True, text=True)
    assert r.returncode in (1, 2) and "nonexistent" in r.stdout + r.stderr


def test_rename_takes_python_re_sub_syntax(tmp_path):
    """Issue 24: the replacement is re.sub's (\\1, \\g<name>), as in the CLI;
    '$1' is refused with the Python spelling."""
    out = tmp_path / "out.th"
    r = ckpt.edit(EXAMPLE, str(out), rename=r"^(?P<head>emb)\.(\d+)\.=\g<head>edding.\2.")
    assert "embedding.0.weight" in str(r.states)
    with ckpt.open(str(out)) as c:
        assert "embedding.0.weight" in [t.name for t in c.tensors()]
    with pytest.raises(ckpt.UsageError, match=r"re\.sub"):
        ckpt.edit(EXAMPLE, str(tmp_path / "x.th"), rename=r"^emb\.(\d+)\.=e.$1.")


def test_wrong_argument_types_raise_type_error_before_anything_is_written(tmp_path):
    # Session 9's walk: progress=5 raised "'int' object is not callable" from the
    # first progress report; c[0] "'int' object is not iterable".
    out = tmp_path / "out.th"
    with pytest.raises(TypeError, match=r"progress: expected a callable\(output, done, total\) or a tqdm bar, not int"):
        ckpt.rewrite(EXAMPLE, out, progress=5)
    assert os.listdir(tmp_path) == []
    with ckpt.open(EXAMPLE) as c:
        with pytest.raises(TypeError, match=r"a tensor name is a string, not int \(keys\(\) lists them\)"):
            c[0]
        with pytest.raises(TypeError, match="not NoneType"):
            c.get_slice(None)
        assert c[c.keys()[0]].shape == tuple(c.tensors()[0].shape)
