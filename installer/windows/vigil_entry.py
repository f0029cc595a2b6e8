"""Entry point frozen by vigil-agent.spec: the same `vigil` command, as vigil.exe and vigil-agent.exe."""

import sys

from vigil.cli import main

if __name__ == "__main__":
    sys.exit(main())
