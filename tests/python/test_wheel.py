"""The installed package is the self-contained wheel (scripts/repair_wheel.py): its extension
and its ckpt executable load no shared library from outside the installation but glibc and the
C++ runtime, and they run on a machine whose own libcurl, libyaml, libisal and zlib are gone.

Runs where scripts/test.sh installed the repaired wheel (CKPT_WHEEL_SELF_CONTAINED=1) or
wherever the installed package has ``ckpt.libs`` beside it; skips for a plain ``pip install .``
(linked against the machine's libraries on purpose)."""

import glob
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import EXAMPLE

import ckpt

PACKAGE_DIR = os.path.dirname(os.path.abspath(ckpt.__file__))
INSTALL_ROOT = os.path.dirname(PACKAGE_DIR)  # site-packages, or pip install --target DIR
LIBS_DIR = os.path.join(INSTALL_ROOT, "ckpt.libs")
EXECUTABLE = os.path.join(INSTALL_ROOT, "ckpt.scripts", "ckpt")

# What may come from the machine: glibc (libc, libm, libresolv, which Kerberos in libcurl's
# tree asks for), the dynamic loader, the vDSO, the C++ runtime. scripts/lib.sh
# CKPT_WHEEL_SYSTEM_LIBS says the same for the wheel file.
SYSTEM_LIBS = re.compile(r"^(linux-vdso\.so\.1|ld-linux-x86-64\.so\.2|libc\.so\.6|libm\.so\.6|"
                         r"libresolv\.so\.2|libstdc\+\+\.so\.6|libgcc_s\.so\.1)$")

# The machine's libraries a build against Debian's -dev packages loads (libcurl with a few of
# its own), hidden in a mount namespace for the run test.
HIDDEN_SONAMES = ("libcurl.so.4", "libyaml-0.so.2", "libisal.so.2", "libz.so.1", "libnghttp2.so.14",
                  "libssl.so.3", "libcrypto.so.3", "libgnutls.so.30", "libgssapi_krb5.so.2")

REQUIRED = os.environ.get("CKPT_WHEEL_SELF_CONTAINED") == "1"
pytestmark = pytest.mark.skipif(not REQUIRED and not os.path.isdir(LIBS_DIR),
                                reason="not the self-contained wheel (no ckpt.libs beside the package)")


def extension():
    found = glob.glob(os.path.join(PACKAGE_DIR, "_ckpt*.so"))
    assert len(found) == 1, found
    return found[0]


def outside_libraries(elf):
    """(name, where) of each library ldd resolves for ELF outside INSTALL_ROOT, not the runtime."""
    r = subprocess.run(["ldd", elf], capture_output=True, text=True, check=True)
    found = []
    for line in r.stdout.splitlines():
        parts = line.split()
        if not parts:
            continue
        name = os.path.basename(parts[0])
        where = parts[2] if len(parts) > 2 and parts[1] == "=>" else parts[0]
        if where == "not":
            found.append((name, "not found"))
        elif os.path.realpath(where).startswith(os.path.realpath(INSTALL_ROOT) + os.sep):
            continue
        elif not SYSTEM_LIBS.match(name):
            found.append((name, where))
    return found


def test_the_wheel_was_repaired():
    assert os.path.isdir(LIBS_DIR), f"no {LIBS_DIR}: the installed wheel is not the repaired one"
    grafted = os.listdir(LIBS_DIR)
    for stem in ("libcurl-", "libyaml-", "libisal-", "libz-"):
        assert any(name.startswith(stem) for name in grafted), (stem, grafted)
    assert os.access(EXECUTABLE, os.X_OK), EXECUTABLE


@pytest.mark.parametrize("which", ["extension", "executable"])
def test_nothing_loaded_from_outside_but_the_runtime(which):
    elf = extension() if which == "extension" else EXECUTABLE
    assert outside_libraries(elf) == []


def test_the_installed_command_runs_the_bundled_executable():
    # auditwheel moves the executable to ckpt.scripts/ and installs a launcher as the command.
    import sysconfig
    if os.path.realpath(INSTALL_ROOT) != os.path.realpath(sysconfig.get_path("platlib")):
        pytest.skip("installed with --target: the command's launcher belongs to another Python")
    command = os.path.join(sysconfig.get_path("scripts"), "ckpt")
    r = subprocess.run([command, "info", EXAMPLE], capture_output=True, text=True)
    assert r.returncode == 0, r
    assert r.stdout == subprocess.run([EXECUTABLE, "info", EXAMPLE], capture_output=True, text=True).stdout


def machine_paths(sonames):
    """The files the dynamic loader would open for SONAMES on this machine."""
    r = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True)
    paths = set()
    for line in r.stdout.splitlines():
        m = re.match(r"\s*(\S+) \(libc6,x86-64[^)]*\) => (\S+)", line)
        if m and m.group(1) in sonames:
            paths.add(os.path.realpath(m.group(2)))
    return paths


def loaded_by_the_interpreter():
    """The shared objects this Python maps once numpy is imported (hiding those would stop
    the interpreter itself: Debian's python links zlib)."""
    code = "import numpy, os; print(open('/proc/self/maps').read())"
    maps = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    fields = [line.split() for line in maps.splitlines()]
    return {os.path.realpath(f[-1]) for f in fields if len(f) >= 6 and f[-1].startswith("/")}


def run_with_hidden(paths, argv):
    """ARGV in a private mount namespace where each of PATHS reads as an empty file."""
    script = ('for f in $CKPT_HIDE; do mount --bind /dev/null "$f" || exit 97; '
              '[ -s "$f" ] && exit 98; done; exec "$@"')
    env = dict(os.environ, CKPT_HIDE=" ".join(sorted(paths)))
    return subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", *argv], env=env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def hiding():
    if shutil.which("unshare") is None or subprocess.run(
            ["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("no mount namespaces here (unshare -m needs root or CAP_SYS_ADMIN)")
    paths = machine_paths(HIDDEN_SONAMES)
    assert any("libcurl" in p for p in paths), paths  # this machine has them: the test hides something
    return paths


def test_the_executable_runs_without_the_machines_libraries(hiding):
    # The check itself: a program linked against the machine's libcurl stops there.
    curl_user = shutil.which("curl")
    if curl_user:
        r = run_with_hidden(hiding, [curl_user, "--version"])
        assert r.returncode == 127 and "libcurl" in r.stderr, r
    r = run_with_hidden(hiding, [EXECUTABLE, "info", EXAMPLE])
    assert r.returncode == 0, r.stderr
    assert "best_state/model" in r.stdout


def test_the_extension_runs_without_the_machines_libraries(hiding):
    paths = hiding - loaded_by_the_interpreter()
    assert any("libcurl" in p for p in paths), paths
    code = ("import sys, ckpt\n"
            "with ckpt.open(sys.argv[1]) as c:\n"
            "    print(c.best_state, len(c.tensors()), float(c.get_tensor(c.tensors()[0].name).sum()))\n")
    r = run_with_hidden(paths, [sys.executable, "-c", code, EXAMPLE])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("best_state/model ")
