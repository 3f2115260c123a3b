"""torch.load as the oracle (issue 19): what torch itself resolves and reads, recorded without
running any of the file's code.

    observe(path) -> Observation

runs `torch.load(path, weights_only=False, pickle_module=<recording module>)` in this process.
The recording module's Unpickler.find_class records every (module, name) torch asks for and
returns an inert stand-in class (calls, BUILD, APPENDS and SETITEMS on it do nothing), so the
load goes on as far as torch's own control flow goes. torch's container entry points are
wrapped for the duration of the call:

- the zip reader (`torch._C.PyTorchFileReader`, which _open_zipfile_reader wraps): which records torch reads with
  get_record (data.pkl, version, byteorder, ...) and which storages with
  get_storage_from_record (their bytes);
- TorchScript routing (`torch.jit.load`): recorded and refused, never run;
- tar (`tarfile.open` as serialization.py calls it): whether the tar form was taken;
- the legacy stream: the file offset at which every pickle.load starts and ends.

Works under torch 1.13 and 2.x (the same entry points exist in both).
"""

import contextlib
import io
import os
import pickle
import sys
import tarfile
import types
import warnings

import torch
import torch.serialization as _ser


class Observation:
    def __init__(self):
        self.globals = set()        # (module, name) find_class was asked for
        self.records = []           # zip records torch read with get_record, in order
        self.storages = {}          # record name -> bytes torch loaded (zip)
        self.jit = False            # torch.load handed the file to torch.jit.load
        self.tar = False            # the tar form was opened
        self.pickle_spans = []      # legacy / bare: (start, end) file offsets of each pickle.load
        self.error = None           # the exception torch.load ended with (type name), or None
        self.container = None       # "zip", "tar", "legacy" as torch took it

    def __repr__(self):
        return ("Observation(container=%r, globals=%r, records=%r, storages=%r, jit=%r, "
                "spans=%r, error=%r)" % (self.container, sorted(self.globals), self.records,
                                         sorted(self.storages), self.jit, self.pickle_spans,
                                         self.error))


class _Inert:
    """What every resolved global becomes: accepts any call, state and items."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return _Inert()

    def __setstate__(self, state):
        pass

    def __setitem__(self, key, value):
        pass

    def append(self, item):
        pass

    def extend(self, items):
        pass


class _JitRouted(Exception):
    pass


def _recording_module(obs):
    """A module object with Unpickler and load, as torch.load's pickle_module."""
    mod = types.ModuleType("ckpt_recording_pickle")
    for k in dir(pickle):
        if not k.startswith("__"):
            setattr(mod, k, getattr(pickle, k))

    class Unpickler(pickle.Unpickler):
        def __init__(self, file, *args, **kwargs):
            super().__init__(file, *args, **kwargs)
            self._oracle_file = file

        def find_class(self, module, name):
            obs.globals.add((module, name))
            return type(str(name) if isinstance(name, str) else "Global", (_Inert,), {})

        def load(self):
            f = self._oracle_file
            start = f.tell() if hasattr(f, "tell") else None
            try:
                return super().load()
            finally:
                if start is not None and isinstance(f, io.IOBase) and not isinstance(f, io.BytesIO):
                    try:
                        obs.pickle_spans.append((start, f.tell()))
                    except (OSError, ValueError):
                        pass

    def load(file, **kwargs):
        return Unpickler(file, **kwargs).load()

    mod.Unpickler = Unpickler
    mod.load = load
    mod.loads = lambda data, **kw: Unpickler(io.BytesIO(data), **kw).load()
    mod.UnpicklingError = pickle.UnpicklingError
    mod.__version__ = "0"
    return mod


class _ZipProxy:
    """Wraps torch's PyTorchFileReader, recording what torch reads."""

    def __init__(self, reader, obs):
        self._reader = reader
        self._obs = obs

    def get_record(self, name, *args):
        self._obs.records.append(name)
        return self._reader.get_record(name, *args)

    def get_storage_from_record(self, name, *args):
        result = self._reader.get_storage_from_record(name, *args)
        try:
            if hasattr(result, "untyped_storage"):  # 2.x: a uint8 tensor over the storage
                data = bytes(result.untyped_storage().tolist())
            else:  # 1.13: a tensor of the storage's dtype
                st = result.storage()
                data = torch.tensor(st.tolist(), dtype=result.dtype).numpy().tobytes()
        except Exception:  # noqa: BLE001 - the bytes are informative only
            data = None
        self._obs.storages[name] = data
        return result

    def __getattr__(self, name):
        return getattr(self._reader, name)


@contextlib.contextmanager
def _hooks(obs, module):
    orig_reader = torch._C.PyTorchFileReader
    orig_jit_load = torch.jit.load
    orig_tarfile = _ser.tarfile

    def reader(*args, **kwargs):
        obs.container = "zip"
        return _ZipProxy(orig_reader(*args, **kwargs), obs)

    def jit_load(*args, **kwargs):
        obs.jit = True
        raise _JitRouted("routed to torch.jit.load")

    def tar_open(*args, **kwargs):
        t = orig_tarfile.open(*args, **kwargs)
        obs.tar = True
        obs.container = "tar"
        return t

    tar_ns = types.SimpleNamespace(**{k: getattr(orig_tarfile, k) for k in dir(orig_tarfile)
                                      if not k.startswith("__")})
    tar_ns.open = tar_open
    torch._C.PyTorchFileReader = reader
    # torch 1.13 (Debian's) replaces pickle_module by the module-level `pickle` when
    # weights_only is False: record through that name as well.
    orig_pickle = _ser.pickle
    _ser.pickle = module
    torch.jit.load = jit_load
    _ser.tarfile = tar_ns
    try:
        yield
    finally:
        torch._C.PyTorchFileReader = orig_reader
        _ser.pickle = orig_pickle
        torch.jit.load = orig_jit_load
        _ser.tarfile = orig_tarfile


def observe(path):
    """What torch.load does with `path`, recorded (see the module docstring)."""
    obs = Observation()
    module = _recording_module(obs)
    with _hooks(obs, module), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.load(path, weights_only=False, pickle_module=module, map_location="cpu")
        except _JitRouted:
            pass
        except BaseException as e:  # noqa: BLE001 - any refusal is an outcome
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            obs.error = type(e).__name__
    if obs.container is None:
        obs.container = "tar" if obs.tar else "legacy"
    # torch's legacy loader clears nothing it set in sparse validation; nothing to undo here.
    return obs


if __name__ == "__main__":
    for p in sys.argv[1:]:
        print(os.path.basename(p), observe(p))
