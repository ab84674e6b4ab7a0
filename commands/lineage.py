"""`python -m commands.lineage [--write]`: print the README's lineage picture (assets/lineage.py
draws it from the Definitions), or put it into README.md between its two markers."""

import argparse
import sys

from assets.lineage import README, mermaid, with_block
from definitions import defs


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m commands.lineage")
    parser.add_argument("--write", action="store_true", help="update README.md's block")
    block = mermaid(defs)
    if not parser.parse_args().write:
        print(block)
        return 0
    README.write_text(with_block(README.read_text(encoding="utf-8"), block), encoding="utf-8")
    print(f"lineage written to {README.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
