"""``python -m keyless``: the same as the ``keyless`` command."""

import sys

from keyless._cli.main import main

if __name__ == "__main__":
    sys.exit(main())
