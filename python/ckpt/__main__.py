"""``python -m ckpt ARGS``: runs the ckpt command installed with the package."""

import os
import sys

from ckpt._command import command_path


def main() -> None:
    path = command_path()
    argv = [path, *sys.argv[1:]]
    if os.name == "posix":
        os.execv(path, argv)
    import subprocess
    sys.exit(subprocess.call(argv))


if __name__ == "__main__":
    main()
