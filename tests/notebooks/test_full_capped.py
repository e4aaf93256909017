"""Every notebook at the `full` scale under the step cap (``NBSUPPORT_MAX_STEPS``), on a CPU.

The `full` presets, data and shapes run on every change while every training run stops after
:data:`CAP` steps. Each notebook must finish, every check must hold, the run must say it was
capped (the ``step_cap`` record), and no claim may be judged on models trained that briefly.
Run alone with ``make test-full`` (two notebooks side by side)."""

from __future__ import annotations

import pytest
from checks import claim_is_well_formed

from nbsupport.runner import NOTEBOOKS, run
from nbsupport.scales import CAP_PREMISE, MAX_STEPS_ENV

CAP = 3
NAMES = sorted(str(p.relative_to(NOTEBOOKS.parent)) for p in NOTEBOOKS.rglob("*.ipynb")
               if ".ipynb_checkpoints" not in p.parts)

pytestmark = pytest.mark.full_capped


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Every notebook at full, capped, two at a time; the runner's results by notebook."""
    mp = pytest.MonkeyPatch()
    mp.setenv(MAX_STEPS_ENV, str(CAP))
    mp.setenv("NBSUPPORT_HEADLESS", "1")
    try:
        done = run(None, scale="full", jobs=2, out=tmp_path_factory.mktemp("full-capped"), progress=False,
                   timeout=600)
    finally:
        mp.undo()
    print("\n".join(f"{r.seconds:7.1f} s  {r.status:12} {r.notebook}" for r in done))
    return {r.notebook: r for r in done}


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_at_full_under_the_cap(results, name):
    r = results[name]
    assert r.status == "ok", f"{name} at full, capped at {CAP} steps: {r.status}: {r.error}"
    assert r.scale == "full"
    assert not [k for k in r.checks if not k["ok"]], f"{name}: failed checks"
    assert r.records.get("step_cap", {}).get("max_steps") == CAP, f"{name} does not record the step cap"
    for c in r.claims:
        claim_is_well_formed(c)
        assert c["verdict"] == "not judged" and CAP_PREMISE in c["reason"], c
