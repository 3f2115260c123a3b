"""Python = CLI: every operation is a function of the same name and options
as its command, and its result's to_dict() equals the command's --json on the
same inputs. The cases cover every operation the api describes: a new one
without a case fails test_every_operation_has_a_case."""

import json
import os
import shutil
import subprocess

import sys

import pytest

from conftest import EXAMPLE, HAVE_TORCH, MAKE_FIXTURES

import ckpt
from ckpt import _operations

# CLI positionals that are options in Python (the rest are --flags).
POSITIONAL = {("ls", "path"), ("show", "name"), ("cfg", "key"), ("edit", "overrides")}


def cli_args(op, options):
    """The command's flags for Python's options: field -> --field (-o for out)."""
    args = []
    for name, value in options.items():
        if (op["name"], name) in POSITIONAL:
            args += value if isinstance(value, list) else [str(value)]
            continue
        flag = "-o" if name == "out" else "--" + name.replace("_", "-")
        if value is True:
            args.append(flag)
        elif isinstance(value, list):
            for v in value:
                args += [flag, str(v)]
        else:
            args += [flag, str(value)]
    return args


def cases(tmp):
    """(operation, inputs, options) for every operation."""
    out = str(tmp / "out")
    st = str(tmp / "model.safetensors")
    dcp = str(tmp / "dcp")
    return [
        ("info", [EXAMPLE], {}),
        ("ls", [EXAMPLE], {"path": "best_state", "depth": 1}),
        ("tensors", [EXAMPLE], {"match": ["emb.*"]}),
        ("tensors", [EXAMPLE], {"group": 1}),
        ("tensors", [EXAMPLE], {"tree": True}),
        ("show", [EXAMPLE], {"name": "emb.0.weight", "head": 5}),
        ("cfg", [EXAMPLE], {"key": "optim"}),
        ("verify", [EXAMPLE], {}),
        ("scan", [EXAMPLE], {}),
        ("stats", [EXAMPLE], {"match": ["emb.*"]}),
        ("diff", [EXAMPLE, EXAMPLE], {"rtol": 0.001}),
        ("edit", [EXAMPLE], {"out": out + ".th", "overrides": ["optim.lr=1e-5"], "drop": ["emb.0.*"], "force": True}),
        ("edit", [EXAMPLE], {"out": out + ".th", "dtype": "float32", "match": ["emb.*"], "dry_run": True}),
        ("rewrite", [EXAMPLE], {"out": out + ".th", "force": True}),
        ("export", [EXAMPLE], {"out": out + ".th", "force": True}),
        ("sanitize", [EXAMPLE], {"out": out + ".th", "force": True}),
        ("bundle", [EXAMPLE], {"out": out + "_bundle", "force": True}),
        ("to_safetensors", [EXAMPLE], {"out": st, "force": True}),
        ("from_safetensors", [st], {"out": out + ".th", "into": EXAMPLE, "force": True}),
        ("to_dcp", [EXAMPLE], {"out": dcp, "state": "best_state/model", "ranks": 2, "force": True}),
        ("consolidate", [dcp], {"out": out + ".th", "force": True}),
        ("wrap", [str(tmp / "exported.th")], {"out": out + ".th", "force": True}),
        ("compact", [str(tmp / "copy.th")], {}),
        # A MusicGen LM (make_fixtures --musicgen-lm, with torch).
        ("to_transformers", [str(tmp / "lm.bin")], {"out": out + "_hf", "dtype": "float16", "force": True}),
        ("from_transformers", [out + "_hf"], {"out": out + "_ac", "force": True}),
    ]


def test_every_operation_has_a_case(tmp_path):
    covered = {name for name, _, _ in cases(tmp_path)}
    assert covered == {op["name"] for op in _operations.OPERATIONS}


def test_function_names_and_options_are_the_commands(ckpt_command):
    for op in _operations.OPERATIONS:
        fn = getattr(ckpt, op["name"])
        params = set(fn.__signature__.parameters)
        fields = {f["name"] for f in _operations.TYPES[op["options"]]["fields"]}
        assert fields <= params, op["name"]
        help_text = subprocess.run([ckpt_command, op["cli"], "--help"], capture_output=True, text=True).stdout
        for name in fields:
            if (op["name"], name) in POSITIONAL:
                continue
            flag = "-o" if name == "out" else "--" + name.replace("_", "-")
            assert flag in help_text, f"ckpt {op['cli']} has no {flag}"
        assert "--json" in help_text, op["cli"]


def test_python_to_dict_equals_cli_json(tmp_path, ckpt_command):
    ckpt.export(EXAMPLE, tmp_path / "exported.th")
    if HAVE_TORCH:
        subprocess.run([sys.executable, MAKE_FIXTURES, "--musicgen-lm", "mono", str(tmp_path / "lm.bin")], check=True,
                       capture_output=True, stdin=subprocess.DEVNULL)
    for name, inputs, options in cases(tmp_path):
        if name.endswith("_transformers") and not HAVE_TORCH:
            continue
        op = next(o for o in _operations.OPERATIONS if o["name"] == name)
        if name == "compact":
            shutil.copy(EXAMPLE, tmp_path / "copy.th")
        r = subprocess.run([ckpt_command, op["cli"], *inputs, *cli_args(op, options), "--json"],
                           capture_output=True, text=True)
        assert r.returncode in (0, 1), (name, r.stderr)
        want = json.loads(r.stdout)
        if name == "compact":
            shutil.copy(EXAMPLE, tmp_path / "copy.th")
        got = getattr(ckpt, name)(*inputs, **options)
        if name == "cfg":  # cfg --json prints the data alone: the result's value (text is what cfg prints)
            assert got.to_dict()["value"] == want and got.text == subprocess.run(
                [ckpt_command, "cfg", *inputs, *cli_args(op, options)], capture_output=True, text=True).stdout
            continue
        assert got.to_dict() == want, name


def test_errors_spell_options_as_keyword_arguments(tmp_path, ckpt_command):
    with pytest.raises(ckpt.UsageError) as e:
        ckpt.edit(EXAMPLE, tmp_path / "x.th", drop="no.such.key*")
    assert "allow_no_match=True" in str(e.value) and "--" not in str(e.value)
    r = subprocess.run([ckpt_command, "edit", EXAMPLE, "-o", tmp_path / "x.th", "--drop", "no.such.key*"],
                       capture_output=True, text=True)
    assert "--allow-no-match" in r.stderr
    with pytest.raises(ckpt.UsageError, match="max_shard_size"):
        ckpt.to_safetensors(EXAMPLE, tmp_path / "s", max_shard_size=[1])
    with pytest.raises(ckpt.UsageError, match="no_such_option"):
        ckpt._ckpt.call("stats", [EXAMPLE], json.dumps({"no_such_option": 1}))


def test_sizes_as_ints_and_one_override_as_a_string(tmp_path):
    r = ckpt.to_safetensors(EXAMPLE, tmp_path / "shards", max_shard_size=10_000)
    assert r.sharded and r.files > 1
    r = ckpt.edit(EXAMPLE, tmp_path / "e.th", overrides="optim.lr=1e-5")
    assert r.config_changes == ["optim.lr: 1 -> 1e-05"]


def test_progress_callback_and_tqdm_like_bar(tmp_path):
    seen = []
    ckpt.rewrite(EXAMPLE, tmp_path / "a.th", progress=lambda out, done, total: seen.append((out, done, total)))
    assert seen and seen[-1][1] == seen[-1][2] and seen[-1][0] == str(tmp_path / "a.th")

    class Bar:
        n, total = 0, None

        def update(self, k):
            self.n += k

    bar = Bar()
    ckpt.rewrite(EXAMPLE, tmp_path / "b.th", progress=bar)
    assert bar.n == bar.total and bar.total > 0


def test_public_names_docstrings_and_repr():
    names = dir(ckpt)
    assert "edit" in names and "StatsRow" in names and not [n for n in names if n.startswith("_") and n != "__version__"]
    assert "Returns EditResult" in ckpt.edit.__doc__ and "allow_no_match" in ckpt.edit.__doc__
    rows = ckpt.stats(EXAMPLE, match="emb.0.*")
    assert "<table>" in rows._repr_html_() and "std_population" in rows._repr_html_()
    assert repr(rows[0]).startswith("StatsRow(name='emb.0.weight'")
    d = ckpt.diff(EXAMPLE, EXAMPLE)
    assert d.equal and d.tensors.compared == 36 and "<table>" in d._repr_html_()


def test_open_reads_like_safe_open():
    with ckpt.open(EXAMPLE, framework="np") as c:
        assert "emb.0.weight" in c and len(c) == len(c.keys()) == 36
        assert c["emb.0.weight"].shape == (33, 16)
        s = c.get_slice("emb.0.weight")
        assert s.get_shape() == [33, 16] and s[:2].shape == (2, 16)
        assert c.metadata()["layout"] == "audiocraft-training"
        (row,) = [t for t in c.tensors() if t.name == "emb.0.weight"]
        assert row.to_dict() == ckpt.tensors(EXAMPLE, match="emb.0.weight")[0].to_dict()


def test_open_a_dcp_folder(tmp_path):
    ckpt.to_dcp(EXAMPLE, tmp_path / "dcp", state="best_state/model")
    with ckpt.open(tmp_path / "dcp") as c, ckpt.open(EXAMPLE) as e:
        assert c.layout == "state-dict" and len(c) == 36
        assert (c.get_tensor("emb.0.weight") == e.get_tensor("emb.0.weight")).all()
    assert not os.path.exists(tmp_path / "dcp" / "consolidated")


def test_stubs_are_generated_from_the_description():
    from ckpt._stubs import stub_text
    path = os.path.join(os.path.dirname(ckpt.__file__), "_operations.pyi")
    with open(path) as f:
        assert f.read() == stub_text(), "run: python -m ckpt._stubs > python/ckpt/_operations.pyi"
