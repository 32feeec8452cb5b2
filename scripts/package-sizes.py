#!/usr/bin/env python3
"""Report each function's deployment package size after `sam build`, against the 8 MiB budget.

Lambda deploys a zip of the build directory, so the figure that matters is the zip: each
`.aws-sam/build/<Function>/` is deflated in memory the way `sam deploy` packages it. Exits
non-zero when a package is over budget or when no function was built.
"""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

BUDGET_MIB = 8.0
MIB = 1024 * 1024


def zipped_size(directory: Path) -> tuple[int, int]:
    buffer = io.BytesIO()
    raw = 0
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            raw += path.stat().st_size
            archive.write(path, path.relative_to(directory))
    return raw, len(buffer.getvalue())


def main() -> int:
    build = Path(sys.argv[1] if len(sys.argv) > 1 else ".aws-sam/build")
    functions = sorted(d for d in build.iterdir() if (d / "bootstrap").is_file()) if build.is_dir() else []
    if not functions:
        print(f"no built functions under {build}; run `sam build --beta-features` first")
        return 1
    over = False
    print(f"{'function':<20} {'bootstrap':>10} {'package (zip)':>14}")
    for directory in functions:
        raw, packed = zipped_size(directory)
        flag = "" if packed <= BUDGET_MIB * MIB else "  OVER BUDGET"
        over = over or bool(flag)
        print(f"{directory.name:<20} {raw / MIB:>7.2f} MiB {packed / MIB:>10.2f} MiB{flag}")
    print(f"budget: {BUDGET_MIB:.0f} MiB per package (arm64, provided.al2023)")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
