"""The command line: the entry modules (`make run`, `make rebuild`, `make diagnose`) and what
they share to run the jobs of `definitions` and say how each went. Nothing imports this package
but other entry points (refresh.py, the sandbox's demo, the tests)."""
