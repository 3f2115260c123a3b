#!/usr/bin/python3
"""Generates the golden pickles for tests/unit/pickle_golden_test.cc.

For every case X: <name>.p<N>.pkl = pickle.dumps(X, protocol=N) for N in 0..5
(CPython 3.11's C pickler, as torch.save uses), plus torch_*.pkl: the data.pkl
record of torch.save files. Run with Debian's /usr/bin/python3 (torch 1.13,
omegaconf 2.2) from this directory:  /usr/bin/python3 make_golden.py
The test checks pickle(unpickle(p2)) == p2 byte for byte, and that the
protocol 0/1/3/4/5 files re-pickle to the same bytes as p2 (known exceptions
are listed in the test).
"""
import collections
import io
import os
import pickle
import sys
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))


class Point:
    def __init__(self, x, y):
        self.x = x
        self.y = y


class WithNewArgsEx:
    """Protocol 4+ pickles it with NEWOBJ_EX, protocol 2-3 via functools.partial."""

    def __init__(self, a, b):
        self.a = a
        self.b = b

    def __getnewargs_ex__(self):
        return (self.a,), {'b': self.b}


class Slotted:
    __slots__ = ('u', 'v')

    def __init__(self):
        self.u = 1
        self.v = 'two'


LARGE = set()


def cases():
    c = {}
    c['ints'] = [0, 1, 255, 256, 65535, 65536, -1, -128, -129, -256, 2**31 - 1, -2**31,
                 2**31, -2**31 - 1, 2**63 - 1, -2**63, 2**63, -2**63 - 1, 2**64, 10**30,
                 -10**30, 2**2100, -(2**2100) + 12345, 127, 128, -32768]
    c['floats'] = [0.0, -0.0, 1.5, -2.25, 1e-310, 1.7976931348623157e308, float('inf'),
                   float('-inf'), float('nan'), 0.1, 1e16]
    c['bools_none'] = [True, False, None, [None, True]]
    c['unicode'] = ['', 'a', 'hello', 'caf\u00e9', '\u20ac', '\U0001F600 astral', '\ud800',
                    'lone \udfff low', 'a\nb\\c "q" \'s\'', '\x00\x1a\r', 'x' * 300]
    c['bytes'] = [b'', b'a', b'\x00\xff\x80 bytes', bytes(range(256)), [b'same'] * 2]
    c['bytearray'] = [bytearray(b'ab\xff'), bytearray()]
    c['tuples'] = [(), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4), ((),), (('a',), ('a', 'b')),
                   tuple(range(10))]
    for n in (0, 1, 2, 999, 1000, 1001, 2001):
        c[f'list_{n}'] = list(range(n))
        c[f'dict_{n}'] = {i: i % 7 for i in range(n)}
        if n >= 999:
            LARGE.update({f'list_{n}', f'dict_{n}'})
    c['nested'] = {'a': [1, {'b': (2, [3, {'c': None}])}], 'd': {}, 'e': [[]]}
    c['sets'] = [set(), {1}, {1, 2, 3}, frozenset(), frozenset(['x', 'y']), {(1, 2), 'k'}]
    shared = [1, 2]
    shared_t = ('t', 'u')
    c['shared'] = [shared, shared, {'k': shared, 'j': shared_t}, shared_t, 'str', 'str']
    rec = [1]
    rec.append(rec)
    c['recursive_list'] = rec
    rt = ([],)
    rt[0].append(rt)
    c['recursive_tuple'] = rt
    rt4 = ([], 1, 2, 3)
    rt4[0].append(rt4)
    c['recursive_tuple4'] = rt4
    od = collections.OrderedDict([('w', 1), ('b', [2])])
    od._metadata = {'version': 1}
    c['ordereddict'] = od
    c['ordereddict_1001'] = collections.OrderedDict((i, i % 3) for i in range(1001))
    c['ordereddict_1000'] = collections.OrderedDict((i, i % 3) for i in range(1000))
    LARGE.update({'ordereddict_1000', 'ordereddict_1001'})
    dd = collections.defaultdict(list)
    dd['x'].append(1)
    dd['y'] = [2, 3]
    c['defaultdict'] = dd
    c['instance'] = Point(1, [Point('p', None)])
    c['newargs_ex'] = [WithNewArgsEx(1, 'b'), WithNewArgsEx(2, 3)]
    c['slots'] = Slotted()
    c['globals'] = [int, dict, collections.OrderedDict, len, collections.defaultdict, str,
                    Point, Point.__init__]
    c['dict_keys'] = {1: 'a', 'b': 2, (1, 'x'): 3, None: 4, 2.5: 5, True: 6, b'k': 7}
    c['complex'] = [complex(1, 2)]
    return c


def torch_cases():
    import torch
    from omegaconf import OmegaConf
    out = {}
    sd = collections.OrderedDict()
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    sd['w'] = base
    sd['w_view'] = base[1]  # shares the storage
    sd['i64'] = torch.tensor([1, -2, 3], dtype=torch.int64)
    sd['b'] = torch.tensor([True, False])
    sd['h'] = torch.zeros(2, dtype=torch.float16)
    sd['p'] = torch.nn.Parameter(torch.ones(2))
    sd._metadata = {'': {'version': 1}}
    cfg = OmegaConf.create({'optim': {'lr': 1e-4, 'betas': [0.9, 0.95]}, 'name': '${optim.lr}',
                            'missing': '???', 'nothing': None, 'flag': True})
    for name, obj in {'torch_state_dict': sd,
                      'torch_with_cfg': {'model': sd, 'xp.cfg': cfg, 'epoch': 3,
                                         'history': [{'loss': 0.5}]}}.items():
        buf = io.BytesIO()
        torch.save(obj, buf)
        with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as z:
            pkl = [n for n in z.namelist() if n.endswith('/data.pkl')][0]
            out[name] = z.read(pkl)
    return out


def main():
    for f in os.listdir(HERE):
        if f.endswith('.pkl'):
            os.remove(os.path.join(HERE, f))
    names = []
    for name, obj in cases().items():
        names.append(name)
        # Large cases only in protocols 2 and 4 (the files stay small).
        protos = (2, 4) if name in LARGE else range(6)
        for proto in protos:
            try:
                data = pickle.dumps(obj, protocol=proto)
            except TypeError:  # e.g. __slots__ without __getstate__ below protocol 2
                continue
            with open(os.path.join(HERE, f'{name}.p{proto}.pkl'), 'wb') as f:
                f.write(data)
    for name, data in torch_cases().items():
        with open(os.path.join(HERE, f'{name}.pkl'), 'wb') as f:
            f.write(data)
    with open(os.path.join(HERE, 'cases.txt'), 'w') as f:
        f.write('\n'.join(names) + '\n')
    total = sum(os.path.getsize(os.path.join(HERE, f)) for f in os.listdir(HERE))
    print(f'{len(names)} cases, {total} bytes', file=sys.stderr)


if __name__ == '__main__':
    main()
