"""The chart of `make bench`: each figure's measurement as a share of its target (1 is the
target; a bar left of the line met it), on a log scale, from bench/results.json. Run with the
bench environment's interpreter (matplotlib is not a dependency of the project):
`python bench/chart.py RESULTS PNG`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib  # type: ignore[import-not-found]

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # type: ignore[import-not-found]  # noqa: E402


def draw(results: Path, png: Path) -> None:
    body = json.loads(results.read_text())
    figures = body["figures"][::-1]  # the table's first row on top
    names = [f["name"] for f in figures]
    # a share beyond any scale (a rate of zero) is drawn at the chart's edge
    shares = [
        1e3 if f["share_of_target"] is None else min(max(f["share_of_target"], 1e-3), 1e3)
        for f in figures
    ]
    colours = ["#2e7d32" if f["met"] else "#c62828" for f in figures]
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(figures) + 1.5))
    ax.barh(names, shares, color=colours)
    ax.axvline(1, color="black", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlabel("measured / target (log scale; ≤ 1 is met)")
    for y, figure in enumerate(figures):
        ax.annotate(f"  {figure['target']}", (shares[y], y), va="center", fontsize=8)
    commit = body["git"]["commit"][:10]
    ax.set_title(f"make bench at {commit}: {sum(f['met'] for f in figures)}/{len(figures)} met")
    fig.tight_layout()
    fig.savefig(png, dpi=110)


if __name__ == "__main__":
    draw(Path(sys.argv[1]), Path(sys.argv[2]))
