"""Run the simulator: ``python -m seedtune.offline.sim --port 0 --port-file /tmp/sim.port``."""

import sys

from seedtune.offline.sim.server import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], prog="python -m seedtune.offline.sim"))
