"""Where the ``ckpt`` executable of this installation is: ``ckpt.scripts``
beside the package (the self-contained wheel), the scripts folder of the
environment the package is in (as ruff and uv find theirs), or the ``bin``
folder beside the package for ``pip install --target DIR``."""

from __future__ import annotations

import os
import sys
import sysconfig

from ckpt._errors import UsageError

_EXE = "ckpt.exe" if os.name == "nt" else "ckpt"


def command_path() -> str:
    """The ckpt executable; UsageError when none is installed."""
    package_dir = os.path.dirname(os.path.abspath(__file__))
    candidates = [
        # The self-contained wheel (scripts/repair_wheel.py): auditwheel moves the executable
        # beside the package, next to the libraries it loads, and installs a launcher as the
        # command; the executable itself needs no Python to start.
        os.path.join(os.path.dirname(package_dir), "ckpt.scripts", _EXE),
        os.path.join(os.path.dirname(package_dir), "bin", _EXE),  # pip install --target DIR
        os.path.join(sysconfig.get_path("scripts"), _EXE),
        os.path.join(os.path.dirname(sys.executable), _EXE),
    ]
    try:
        candidates.append(os.path.join(sysconfig.get_path("scripts", f"{os.name}_user"), _EXE))
    except KeyError:
        pass
    for path in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise UsageError("the ckpt executable is not installed beside the package (looked in: "
                     + ", ".join(candidates) + ")")
