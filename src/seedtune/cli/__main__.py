"""``python -m seedtune.cli COMMAND ...``, the same as the ``seedtune`` console script."""

import sys

from seedtune.cli import main

if __name__ == "__main__":
    sys.exit(main())
