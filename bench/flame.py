"""Summarise py-spy's collapsed stacks (`--format raw`): where a worker's samples went.

    .venv/bin/python -m bench.flame DIR/PAY-via-tasker.txt [--top 25]

Prints the share of samples in which each function is on the stack (inclusive) and at the top
(self), the busiest first. A sample is one stack, `frame;frame;... count`, outermost first.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path


def frame_name(frame: str) -> str:
    """A frame without its line number and the site-packages part of its path."""
    name = re.sub(r":\d+\)$", ")", frame.strip())
    return re.sub(r"\(.*?/(?:site-packages|lib/python3\.\d+)/", "(", name)


def summarise(text: str) -> tuple[int, Counter[str], Counter[str]]:
    """Total samples, inclusive and self counts by function."""
    total, inclusive, own = 0, Counter[str](), Counter[str]()
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [frame_name(f) for f in stack.split(";") if f.strip()]
        n = int(count)
        total += n
        for name in set(frames):
            inclusive[name] += n
        if frames:
            own[frames[-1]] += n
    return total, inclusive, own


def main() -> None:
    """Print the summary."""
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    total, inclusive, own = summarise(Path(args.path).read_text())
    print(f"{total} samples")
    print("inclusive (on the stack):")
    for name, n in inclusive.most_common(args.top):
        print(f"  {100 * n / total:5.1f}%  {name}")
    print("self (at the top):")
    for name, n in own.most_common(args.top):
        print(f"  {100 * n / total:5.1f}%  {name}")


if __name__ == "__main__":
    main()
