"""The claims registry: every claim in the collection is registered; a hand edit of a registered
claim fails the check naming notebook and claim; run time compares each claim with it."""

import json
import shutil
from pathlib import Path

import pytest
import yaml

from nbsupport.registry import calls, check, check_theme, fingerprint, registered
from nbsupport.runner import NOTEBOOKS, ROOT


def test_every_claim_in_the_collection_is_registered_and_unchanged():
    assert check(NOTEBOOKS) == []


def _copy_theme(tmp_path: Path, theme: str) -> Path:
    dst = tmp_path / theme
    shutil.copytree(NOTEBOOKS / theme, dst)
    return dst


def _edit_first_margin(nb_path: Path) -> str:
    """Change the first literal `margin=` of a claim call; returns that claim's name as written."""
    nb = json.loads(nb_path.read_text())
    for cell in nb["cells"]:
        src = "".join(cell["source"])
        if cell["cell_type"] == "code" and "claim(" in src and "margin=0." in src:
            cell["source"] = src.replace("margin=0.", "margin=0.0", 1)  # 0.05 -> 0.005 etc.
            nb_path.write_text(json.dumps(nb))
            return src
    raise AssertionError("no literal margin found")


def test_hand_edited_margin_fails_naming_notebook_and_claim(tmp_path):
    theme = _copy_theme(tmp_path, "warmup")
    nb = theme / "05_certified_short_warmup.ipynb"
    before = {c.name: c.fingerprint for c in calls(nb)}
    _edit_first_margin(nb)
    changed = [c for c in calls(nb) if before.get(c.name) != c.fingerprint]
    assert changed, "the edit changed a claim call"
    problems = check_theme(theme)
    assert problems and all("05_certified_short_warmup.ipynb" in p for p in problems)
    assert any(changed[0].name.strip("'\"") in p and "margin" in p for p in problems), problems


def test_unregistered_and_missing_claims_are_named(tmp_path):
    theme = _copy_theme(tmp_path, "warmup")
    reg = yaml.safe_load((theme / "claims.yaml").read_text())
    nb_name, spec = next(iter(reg["notebooks"].items()))
    gone = next(iter(spec["claims"]))
    del spec["claims"][gone]
    spec["claims"]["a_claim_nobody_makes"] = {"expect": ">", "margin": 0.1, "unit": "seed", "call": "0" * 12}
    (theme / "claims.yaml").write_text(yaml.safe_dump(reg, allow_unicode=True))
    problems = "\n".join(check_theme(theme))
    assert f"claim {gone} is not registered" in problems or gone in problems
    assert "a_claim_nobody_makes: registered but no claim(...) call" in problems


def test_fingerprint_ignores_formatting_not_content():
    import ast

    a = ast.parse('claim("x", "s", e,\n      margin=0.1)').body[0].value
    b = ast.parse('claim( "x","s",e, margin=0.1 )').body[0].value
    c = ast.parse('claim("x", "s", e, margin=0.2)').body[0].value
    assert fingerprint(a) == fingerprint(b) != fingerprint(c)


def test_run_time_comparison(tmp_path):
    (tmp_path / "claims.yaml").write_text(yaml.safe_dump({"notebooks": {"n.ipynb": {"claims": {
        "c": {"expect": ">", "margin": 0.01, "unit": "seed", "history": [
            {"date": "2026-12-07", "change": "margin 0 -> 0.01", "why": "smallest effect of interest",
             "before": {"verdict": "reproduced", "effect": "0.02 [0.01, 0.03]"}}]}}}}}))
    entry = {"expect": ">", "margin": 0.01, "unit": "seed"}
    ok = registered("c", entry, tmp_path)
    assert ok["status"] == "registered" and ok["history"][0]["before"]["verdict"] == "reproduced"
    assert registered("c", {**entry, "margin": 0.02}, tmp_path)["status"] == "differs"
    assert registered("other", entry, tmp_path)["status"] == "unregistered"
    assert registered("c", entry, tmp_path / "nowhere")["status"] == "no registry"


def test_cli_check_exit_codes(tmp_path):
    import subprocess
    import sys

    ok = subprocess.run([sys.executable, "-m", "nbsupport", "claims", "--check"], capture_output=True, text=True, cwd=ROOT)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    theme = _copy_theme(tmp_path, "warmup")
    _edit_first_margin(theme / "05_certified_short_warmup.ipynb")
    bad = subprocess.run([sys.executable, "-m", "nbsupport", "claims", "--check", "--root", str(tmp_path)],
                         capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 1 and "05_certified_short_warmup.ipynb: claim" in bad.stdout


@pytest.mark.parametrize("theme", sorted(p.name for p in NOTEBOOKS.iterdir() if (p / "claims.yaml").exists()))
def test_registry_entries_are_complete(theme):
    reg = yaml.safe_load((NOTEBOOKS / theme / "claims.yaml").read_text())
    for nb, spec in reg["notebooks"].items():
        for name, d in spec["claims"].items():
            missing = {"statement", "effect", "expect", "margin", "unit", "paper", "call"} - set(d)
            assert not missing, f"{theme}/{nb}: {name} lacks {missing}"
