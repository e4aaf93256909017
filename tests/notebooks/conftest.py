"""``run_notebook(path, **params)``: execute a notebook at smoke scale with papermill.

Returns ``(records, claims)`` read back from the executed copy, after asserting what must hold
in every notebook at every scale: the run succeeded, the source was not modified, every
``check`` holds, every claim is well formed, and no record is NaN or infinite (name the
exceptions in ``nonfinite_ok``). The executed copy of a run with default parameters is also
kept in ``$NBSUPPORT_EXECUTED_DIR`` when set: `make test` then lets nbval re-execute it and
compare the outputs of its deterministic cells (same seed, same numbers).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from checks import claim_is_well_formed, finite

from nbsupport.record import read_checks, read_claims, read_records
from nbsupport.registry import REGISTRY
from nbsupport.runner import ROOT, execute

NOTEBOOKS = ROOT / "notebooks"


@pytest.fixture
def run_notebook(tmp_path):
    def run(path: str | Path, nonfinite_ok: tuple[str, ...] = (), **params):
        path = Path(path)
        if not path.is_absolute():
            path = NOTEBOOKS / path
        before = path.read_bytes()
        result = execute(path, "smoke", params, tmp_path)
        assert path.read_bytes() == before, f"{path} was modified by its run"
        assert result.status == "ok", f"{path.name} failed at smoke scale: {result.error}"
        out = tmp_path / result.output
        records, claims, checks = read_records(out), read_claims(out), read_checks(out)
        failed = [c for c in checks if not c["ok"]]
        assert not failed, f"{path.name}: checks failed: {failed}"
        for c in claims:
            claim_is_well_formed(c)
        bad = [k for k, v in records.items() if k not in nonfinite_ok and not finite(v)]
        assert not bad, f"{path.name}: records with NaN or inf: {bad}"
        keep = os.environ.get("NBSUPPORT_EXECUTED_DIR")
        if keep and not params:
            dest = Path(keep) / path.relative_to(NOTEBOOKS)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(out, dest)
            if (path.parent / REGISTRY).exists():  # nbval re-runs it there: the same registry beside it
                shutil.copyfile(path.parent / REGISTRY, dest.parent / REGISTRY)
        return records, claims

    os.environ["NBSUPPORT_HEADLESS"] = "1"
    return run
