"""Run the simulator: ``python -m seedtune_sandbox.sim --port 0 --port-file /tmp/sim.port``."""

import sys

from seedtune_sandbox.sim.server import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], prog="python -m seedtune_sandbox.sim"))
