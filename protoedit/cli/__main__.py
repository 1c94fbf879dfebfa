"""``python -m protoedit.cli``: the command line, as the ``protoedit`` script runs it."""

import sys

from protoedit.cli import main

if __name__ == "__main__":
    sys.exit(main())
