"""The bench's own environment, .local/bench-venv: the peer (dlt with its postgres extra) and
matplotlib for the chart, installed by the bootstrapped uv, never in the project's lock."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".local" / "bench-venv"
UV = ROOT / ".local" / "uv" / "bin" / "uv"
PACKAGES = ("dlt[postgres]==1.31.0", "matplotlib==3.11.2")


def python() -> Path:
    """The environment's interpreter, installing it first when its packages are not these."""
    marker = VENV / ".installed"
    wanted = "\n".join(PACKAGES)
    if not (marker.exists() and marker.read_text() == wanted):
        if not UV.exists():
            raise SystemExit(f"{UV} is missing: run `make install` first, it bootstraps uv")
        subprocess.run(
            [UV, "venv", "--quiet", "--allow-existing", "--python", sys.executable, VENV],
            check=True,
        )
        subprocess.run(
            [UV, "pip", "install", "--quiet", "--python", VENV / "bin" / "python", *PACKAGES],
            check=True,
        )
        marker.write_text(wanted)
    return VENV / "bin" / "python"
