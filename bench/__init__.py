"""`make bench`: issue 14's figures (`python -m bench`, see bench/__main__.py)."""

import multiprocessing

# Every process the bench starts (a simulator, a load, the API) is spawned, not forked: a fork
# would copy whatever threads' locks (servers, connection pools) the parent holds, and a fresh
# interpreter holds only its own memory, so a load's peak RSS is the load's alone.
SPAWN = multiprocessing.get_context("spawn")
