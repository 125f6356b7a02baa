"""Accuracy gate of the shelf build: every int8 variant keeps >= 99% of the fp32 mAP@0.5 (exit 1 otherwise).

python models/build/shelf/gate.py /tmp/shelf-yolox/bench/shelf_accuracy_hard.json [more results ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

MIN_RATIO = 0.99


def main(argv: list[str]) -> int:
    only = argv[argv.index("--variant") + 1] if "--variant" in argv else None
    paths = [a for a in argv if a.endswith(".json")]
    failed = []
    for path in map(Path, paths):
        results = json.loads(path.read_text())["results"]
        fp32 = next(r for r in results if r["variant"].endswith("fp32"))
        for r in results:
            if r["variant"].endswith("int8") and only in (None, r["variant"]):
                ratio = r["map50"] / fp32["map50"] if fp32["map50"] else 0.0
                print(f"{path.name}: {r['variant']} mAP {r['map50']:.4f} = {ratio:.1%} of fp32 {fp32['map50']:.4f}")
                if ratio < MIN_RATIO:
                    failed.append(f"{path.name}:{r['variant']}")
    if failed:
        print(f"gate failed (int8 below {MIN_RATIO:.0%} of fp32): {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
