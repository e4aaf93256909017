"""``make bench``: run every ``bench_*.py`` (or those named) and print one markdown report.

Each script's ``main()`` calls :func:`harness.run_cases`; the combined tables are written to
``benchmarks/results/README.md``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(names: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if names:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in names]
    sys.path.insert(0, str(HERE))
    for script in scripts:
        print(f"\n== {script.name}", flush=True)
        spec = importlib.util.spec_from_file_location(script.stem, script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.main()
    results = HERE / "results"
    tables = [p.read_text() for p in sorted(results.glob("*.md")) if p.name != "README.md"]
    report = "# Benchmark results\n\n" + "\n".join(tables)
    (results / "README.md").write_text(report)
    print("\n" + report)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
