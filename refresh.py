"""`make run` (`python refresh.py`) and `make rebuild` (`python refresh.py --full-rebuild`): the
script kept where the README and the services call it; the command is `commands/refresh.py`."""

import sys

from commands.refresh import main

if __name__ == "__main__":
    sys.exit(main())
