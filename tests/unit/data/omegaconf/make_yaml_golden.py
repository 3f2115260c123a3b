#!/usr/bin/python3
"""Writes the golden files the omegaconf layer's unit tests compare against.

Run with Debian's python (real omegaconf 2.2 and PyYAML 6):
    /usr/bin/python3 tests/unit/data/omegaconf/make_yaml_golden.py

yaml_golden.txt, one case a line, tab-separated:
    emit  NAME  TREE  YAML_HEX  ROUNDTRIP   OmegaConf.to_yaml(OmegaConf.create(tree));
                                            ROUNDTRIP 1 when OmegaConf.create(yaml) gives tree back
    scalar NAME TREE  YAML_HEX              yaml.dump(scalar) with OmegaConf's dumper
    parse NAME  TEXT_HEX TREE YAML_HEX      OmegaConf.create(text): its tree and to_yaml
    error NAME  TEXT_HEX                    OmegaConf.create(text) raises
TREE is a prefix encoding, tokens separated by spaces:
    M<n> (n key/value pairs follow)  S<n> (n items follow)  N  B0 B1  I<decimal>
    F<float.hex()>  T<utf-8 hex, surrogatepass>
dictconfig_golden.txt: NAME  TEXT_HEX  PICKLE_HEX  (pickle.dumps(OmegaConf.create(text), protocol=2))
    and edit:NAME  TEXT_HEX  PICKLE_HEX  OVERRIDE_HEX: the pickle after the Python edit matching OVERRIDE
"""
import math
import os
import pickle
import sys

import yaml
from omegaconf import OmegaConf, open_dict
from omegaconf._utils import get_omega_conf_dumper

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "musicgen_small_xp_cfg.yaml")


def enc_str(s):
    return "T" + s.encode("utf-8", "surrogatepass").hex()


def encode_tree(v):
    out = []
    todo = [v]
    while todo:
        x = todo.pop()
        if isinstance(x, dict):
            out.append("M%d" % len(x))
            items = []
            for k, val in x.items():
                items += [k, val]
            todo.extend(reversed(items))
        elif isinstance(x, list):
            out.append("S%d" % len(x))
            todo.extend(reversed(x))
        elif x is None:
            out.append("N")
        elif isinstance(x, bool):
            out.append("B1" if x else "B0")
        elif isinstance(x, int):
            out.append("I%d" % x)
        elif isinstance(x, float):
            out.append("F" + x.hex())
        elif isinstance(x, str):
            out.append(enc_str(x))
        else:
            raise TypeError(type(x))
    return " ".join(out)


def same(a, b):
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if type(a) != type(b):
        return False
    if isinstance(a, dict):
        return list(a.keys()) == list(b.keys()) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


HARD_STRINGS = [
    "123", "1e-5", "1E5", "1.5", ".5", "5.", "1_000", "1__0", "_1", "0x1F", "0o17", "0b101", "017", "1:30",
    "1:30.5", "-1", "+1", " 12", "12 ", "1 2", "nan", "NaN", ".nan", "inf", "-inf", "Infinity", ".inf",
    "yes", "no", "on", "off", "y", "n", "Y", "N", "true", "True", "FALSE", "Yes", "ON", "Off",
    "", "null", "Null", "~", "none", "None", "a: b", "a:b", "a :b", "key:", ":x", "#x", "a #x", "a#x",
    " lead", "trail ", "  ", " ", "2023-01-01", "2023-1-1 10:00:00", "2001-12-14t21:59:43.10-05:00",
    "<<", "=", "-", "- x", "-x", "--- x", "...", "... x", "?", "? x", "?x", "!x", "&x", "*x", "|", ">",
    "'q'", '"dq"', "it's", "%x", "@x", "`x", "[a]", "{a}", "a,b", "a[0]", "x{y}",
    "${optim.lr}", "${oc.env:USER}", "???", "/checkpoint/${oc.env:USER}/experiments/audiocraft/outputs",
    "a" * 79, "a" * 81, "word " * 30, ("lorem ipsum dolor " * 8).strip(), "x" * 30 + " " + "y" * 60,
    "line1\nline2", "line1\nline2\n", "\nlead", "a\n\nb", "trailing space \nx", "a \nb", "a\n b",
    "tab\there", "\t", "cr\rhere", "nul\x00", "bell\x07", "esc\x1b", "del\x7f", "nbsp\xa0x", "\xa0",
    "nel\x85x", "ls\u2028x", "ps\u2029x", "bom\ufeffx", "\ufffe", "caf\u00e9", "\u65e5\u672c\u8a9e",
    "emoji \U0001F600 ok", "\U0001F600", "\U0010FFFF", "surrogate \ud800 x", "back\\slash", 'quote"in',
    "long " + "\u00e9" * 90, "wrapme " * 20 + "\U0001F600", "double \t " + "w " * 50,
    "tabs\t" + "z " * 45, "quote ' " + "q " * 45, "nl\n" + "v " * 45 + "\nend",
    "1_0.5", "1.0e+16", "1e16", "-0", "-0.0", "0", "00", "0.", "+.inf", "-.INF", "1e", "e5", "1e+", "0x", "0b",
]

FLOATS = [1e-05, 1e16, 1e-4, 0.0001, 0.1, 1 / 3, float("nan"), float("inf"), float("-inf"), -0.0, 0.0,
          1.0, 1234567890123456.0, 12345678901234567.0, 1e22, 1e-7, 5e-324, 1.7976931348623157e308,
          2.5e-05, 123456.789, 0.5, 100.0, 1e15, 9.999999999999999e15, 1.5e300, -2.75e-10, 3.0e-4]

INTS = [0, 1, -1, 2**31, 2**63 - 1, -2**63, 2**63, 2**70, -(2**70), 10**30]


def emit_cases():
    cases = []
    for i, s in enumerate(HARD_STRINGS):
        cases.append(("str%d" % i, {"k": s}))
        cases.append(("strlist%d" % i, {"l": [s]}))
    cases.append(("strkeys", {s: 1 for s in HARD_STRINGS if s}))
    cases.append(("longkey", {"k" * 122: 1, "j" * 123: 2, "i" * 200: 3}))
    cases.append(("emptykey", {"": 1}))
    cases.append(("multilinekey", {"a\nb": 1}))
    cases.append(("floats", {"f": FLOATS}))
    cases.append(("floatmap", {("f%d" % i): f for i, f in enumerate(FLOATS)}))
    cases.append(("ints", {"i": INTS}))
    cases.append(("bools", {"t": True, "f": False, "n": None, "l": [True, False, None]}))
    cases.append(("intkeys", {1: "a", 2: {3: "b"}, -5: [1]}))
    cases.append(("empties", {"d": {}, "l": [], "n": {"e": {}, "f": []}, "ll": [[], {}, [[]]]}))
    cases.append(("nested", {"a": [[1, 2], [3, [4, 5]], {"x": [6]}], "b": {"c": {"d": {"e": 1}}}}))
    cases.append(("listofdicts", {"l": [{"a": 1, "b": 2}, {"c": [1, 2]}, {"d": {"e": "f"}}]}))
    cases.append(("toplist", [1, "a", {"b": 2}, [3]]))
    cases.append(("deep", {"a": [{"b": [{"c": [{"d": "e" * 90}]}]}]}))
    cases.append(("deepindent", {"a": {"b": {"c": {"d": {"e": {"f": {"g": "x " * 45}}}}}}}))
    cases.append(("musicgen", yaml.safe_load(open(FIXTURE))))
    return cases


PARSE_TEXTS = [
    ("ints", "a: 0x1F\nb: 1_000\nc: 017\nd: 0b101\ne: 1:30\nf: -0\ng: +12\nh: 0o17\ni: 123456789012345678901234567890\nj: 0x_1F\nk: -0x10\n"),
    ("floats", "a: 1e-5\nb: 1E5\nc: 1.5e3\nd: .5\ne: 5.\nf: 1_0.5\ng: 1:30.5\nh: .inf\ni: -.Inf\nj: .NaN\nk: 1.0e+16\nl: 6.02e23\nm: -1e-3\nn: +1.5\n"),
    ("bools", "a: yes\nb: No\nc: ON\nd: off\ne: y\nf: n\ng: True\nh: FALSE\n"),
    ("nulls", "a: ~\nb: null\nc:\nd: Null\ne: NULL\n"),
    ("strings", "a: 2023-01-01\nb: 'quoted'\nc: \"dq\\tx\"\nd: plain text here\ne: ${optim.lr}\nf: ???\ng: |\n  lit\n  eral\nh: >\n  fol\n  ded\ni: a\n  folded\nj: \"\\U0001F600\"\n"),
    ("tags", "a: !!str 123\nb: !!int '42'\nc: !!float '1'\nd: !!bool 'yes'\ne: !!null ''\nf: ! 12\ng: !!str\n"),
    ("flow", "a: {b: 1, c: [1, 2, {d: e}]}\nf: [x, 'y', \"z\"]\n"),
    ("anchors", "base: &b {x: 1, y: 2}\nother: *b\nlist: &l [1, 2]\nagain: *l\ns: &s str\nt: *s\n"),
    ("merge", "base: &b {x: 1, y: 2}\nchild:\n  <<: *b\n  y: 3\n  z: 4\nmulti:\n  <<: [{a: 1}, {a: 2, b: 3}]\n  c: 5\n"),
    ("intkeys", "1: a\n2: b\n-3: c\n"),
    ("toplist", "- 1\n- a\n- {b: 2}\n"),
    ("empty", ""),
    ("comment", "# just a comment\n"),
    ("scalarstr", "abc"),
    ("nullkey_str", "a: {}\nb: []\n"),
    ("valuekey", "=: 1\n"),
    ("unicode", "k: caf\u00e9 \U0001F600\n\u65e5: \u672c\n"),
    ("docstart", "---\na: 1\n...\n"),
    ("musicgen", open(FIXTURE).read()),
]

ERROR_TEXTS = [
    ("dupkey", "a: 1\na: 2\n"),
    ("dupkey_nested", "x:\n  b: 1\n  b: 2\n"),
    ("badindent", "a:\n  b: 1\n c: 2\n"),
    ("unclosed", "a: [1, 2\n"),
    ("undefined_alias", "a: *nope\n"),
    ("two_docs", "a: 1\n---\nb: 2\n"),
    ("tab_indent", "a:\n\tb: 1\n"),
    ("unhashable", "? [a]\n: 1\n"),
    ("value_as_value", "a: =\n"),
    ("bad_int_tag", "a: !!int abc\n"),
    ("scalar_int", "5"),
]

DICTCONFIG_TEXTS = [
    ("example", "optim:\n  lr: 0.0001\n  betas:\n  - 0.9\n  - 0.95\nname: ${optim.lr}\nmissing: ???\nnothing: null\n"),
    ("scalars", "i: 1\nbig: 123456789012345678901234567890\nneg: -5\nf: 1.5\nb: true\nn: null\ns: hello\nempty: ''\nu: caf\u00e9\n"),
    ("nested", "a: {b: {c: [1, [2, 3], {d: 4}]}}\ne: []\nf: {}\n"),
    ("onechar", "a: b\nb: a\nc: [x, y, a]\nxx: xx\n"),
    ("sharedkeys", "a: {lr: 1}\nb: {lr: 2}\nc: [{lr: 3}]\n"),
    ("intkeys", "1: a\n2: {3: b}\n"),
    ("toplist", "- 1\n- {a: 2}\n"),
    ("musicgen", open(FIXTURE).read()),
]


EXAMPLE = DICTCONFIG_TEXTS[0][1]


def edit_set_value(c):
    c.optim.lr = 0.1


def edit_force_add(c):
    with open_dict(c):
        c.optim.new = 5


def edit_add_nested(c):
    with open_dict(c):
        c.a = {}
        c.a.b = {}
        c.a.b.c = 1


def edit_delete(c):
    del c.optim["betas"]


def edit_set_list(c):
    # Hydra's key=[...] merges into the existing ListConfig (OmegaConf.update(merge=True)).
    OmegaConf.update(c, "optim.betas", [1, 2], merge=True)


def edit_delete_list_item(c):
    del c.optim.betas[0]


def edit_set_dict(c):
    c.nothing = {"x": "y", "z": [1]}


def edit_set_str(c):
    c.name = "plain text"


# name, override text (as the C++ side applies it), Python edit
EDITS = [
    ("set_value", "optim.lr=0.1", edit_set_value),
    ("force_add", "++optim.new=5", edit_force_add),
    ("add_nested", "+a.b.c=1", edit_add_nested),
    ("delete", "~optim.betas", edit_delete),
    ("set_list", "optim.betas=[1,2]", edit_set_list),
    ("delete_list_item", "~optim.betas.0", edit_delete_list_item),
    ("set_dict", "nothing={x: y, z: [1]}", edit_set_dict),
    ("set_str", "name=plain text", edit_set_str),
]


def dump_scalar(x):
    return yaml.dump(x, Dumper=get_omega_conf_dumper(), default_flow_style=False, allow_unicode=True,
                     sort_keys=False)


def main():
    lines = []
    for name, tree in emit_cases():
        cfg = OmegaConf.create(tree)
        text = OmegaConf.to_yaml(cfg)
        container = OmegaConf.to_container(cfg, resolve=False)
        try:
            back = OmegaConf.to_container(OmegaConf.create(text), resolve=False)
            rt = same(back, container)
        except Exception:
            rt = False
        lines.append("\t".join(["emit", name, encode_tree(container), text.encode("utf-8", "surrogatepass").hex(),
                                "1" if rt else "0"]))
    scalars = HARD_STRINGS[:40] + FLOATS + INTS + [True, False, None]
    for i, x in enumerate(scalars):
        lines.append("\t".join(["scalar", "scalar%d" % i, encode_tree(x),
                                dump_scalar(x).encode("utf-8", "surrogatepass").hex()]))
    for name, text in PARSE_TEXTS:
        cfg = OmegaConf.create(text)
        lines.append("\t".join(["parse", name, text.encode().hex(),
                                encode_tree(OmegaConf.to_container(cfg, resolve=False)),
                                OmegaConf.to_yaml(cfg).encode("utf-8", "surrogatepass").hex()]))
    for name, text in ERROR_TEXTS:
        try:
            OmegaConf.create(text)
        except Exception as e:
            lines.append("\t".join(["error", name, text.encode().hex()]))
            continue
        sys.exit("expected an error for %s" % name)
    with open(os.path.join(HERE, "yaml_golden.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")

    lines = []
    for name, text in DICTCONFIG_TEXTS:
        data = pickle.dumps(OmegaConf.create(text), protocol=2)
        lines.append("\t".join([name, text.encode().hex(), data.hex()]))
    for name, override, edit in EDITS:
        cfg = OmegaConf.create(EXAMPLE)
        edit(cfg)
        lines.append("\t".join(["edit:" + name, EXAMPLE.encode().hex(), pickle.dumps(cfg, protocol=2).hex(),
                                override.encode().hex()]))
    with open(os.path.join(HERE, "dictconfig_golden.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
