"""Paired runs: this checkout against another revision, alternating, on the same machine.

On a shared machine one run of `bench.load` differs from the next by 15-25 % (the same code,
minutes apart), more than most changes do. This runs `bench.load` with the same flags against
REV (checked out in a git worktree made for the purpose, removed after) and against this
checkout, alternating, ROUNDS times, and prints for each run the figures of both and, pair by
pair, this checkout's over REV's: a change is real when its ratio holds in every pair.

    .venv/bin/python -m bench.compare REV [--rounds 3] [bench.load flags, e.g. --route tasker]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.load import held_ms

ROOT = Path(__file__).resolve().parents[1]
# what is compared, per run: the figure, its label, and how it is printed
FIGURES = (("rate", "req/s", "{:.0f}"), ("p99_ms", "p99 ms", "{:.0f}"),
           ("server_cpu_ms", "CPU ms", "{:.2f}"), ("held_ms", "lock ms", "{:.2f}"))  # fmt: skip


@contextmanager
def worktree(rev: str) -> Iterator[Path]:
    """REV checked out beside this checkout, for as long as the comparison runs."""
    where = Path(tempfile.mkdtemp(prefix="smspay-compare-")) / "tree"
    subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(where), rev],
                   cwd=ROOT, check=True)  # fmt: skip
    try:
        yield where
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(where)], cwd=ROOT, check=False)


def figures(run: dict[str, Any]) -> dict[str, float]:
    """The compared figures of one run of `bench.load --json` (lock: ms held a unit of work)."""
    return {"rate": run["rate"], "p99_ms": run["p99_ms"], "server_cpu_ms": run["server_cpu_ms"],
            "held_ms": held_ms(run.get("lock") or {})}  # fmt: skip


def load(tree: Path, flags: list[str], out: Path) -> list[dict[str, Any]]:
    """One `bench.load` in `tree` (its own code, this interpreter); its SMS runs."""
    subprocess.run([sys.executable, "-m", "bench.load", *flags, "--json", str(out)],
                   cwd=tree, check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    return [r for r in json.loads(out.read_text()) if r["kind"] != "minimal"]


def table(base: list[list[dict[str, Any]]], this: list[list[dict[str, Any]]]) -> str:
    """Per run and figure: REV's values, this checkout's, each pair's ratio and their median."""
    lines = []
    for name in [r["name"] for r in base[0]]:
        lines.append(name)
        olds = [figures(next(r for r in rnd if r["name"] == name)) for rnd in base]
        news = [figures(next(r for r in rnd if r["name"] == name)) for rnd in this]
        for key, label, fmt in FIGURES:
            old, new = [f[key] for f in olds], [f[key] for f in news]
            pairs = [n / o for o, n in zip(old, new, strict=True) if o]
            median = f"{statistics.median(pairs):.2f}" if pairs else "-"
            lines.append(
                f"  {label:<8} REV {' '.join(fmt.format(v) for v in old):<24}"
                f" this {' '.join(fmt.format(v) for v in new):<24}"
                f" this/REV {' '.join(f'{p:.2f}' for p in pairs):<16} median {median}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the rounds and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rev", help="the revision to compare this checkout with, e.g. HEAD~3")
    parser.add_argument("--rounds", type=int, default=3)
    args, flags = parser.parse_known_args(argv)
    base: list[list[dict[str, Any]]] = []
    this: list[list[dict[str, Any]]] = []
    with worktree(args.rev) as tree, tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            for label, where, into in (("REV", tree, base), ("this", ROOT, this)):
                print(f"round {i + 1}/{args.rounds}: {label}", flush=True)
                into.append(load(where, flags, Path(tmp) / f"{label}-{i}.json"))
    print(f"\n{args.rev} (REV) against this checkout, {args.rounds} alternating rounds,"
          f" bench.load {' '.join(flags)}")  # fmt: skip
    print(table(base, this))
    return 0


if __name__ == "__main__":
    sys.exit(main())
