"""The Binder configuration (repo2docker's binder/ folder) as files, since Binder itself is
out of reach from a test: it parses, names every dependency pyproject.toml names (runtime
and the notebook extra) with the same floors, its scripts are executable shell, and the
launch link opens a start page that exists."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from packaging.requirements import Requirement

from tests.test_packaging import _name

ROOT = Path(__file__).resolve().parents[2]
BINDER = ROOT / "binder"
SCRIPTS = ["postBuild", "start"]
BINDER_LINK = re.compile(r"https://mybinder\.org/v2/gh/[^\s)]+")


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _requirements() -> list[Requirement]:
    lines = (BINDER / "requirements.txt").read_text().splitlines()
    return [Requirement(ln) for ln in (ln.split("#")[0].strip() for ln in lines) if ln]


def test_requirements_name_every_runtime_and_notebook_dependency_with_its_floor():
    project = _project()
    wanted = {_name(r): Requirement(r).specifier
              for r in project["dependencies"] + project["optional-dependencies"]["notebook"]}
    have = {_name(str(r)): r.specifier for r in _requirements()}
    missing = sorted(set(wanted) - set(have))
    assert not missing, f"binder/requirements.txt lacks {missing}"
    differ = {n: (str(have[n]), str(s)) for n, s in wanted.items() if have[n] != s}
    assert not differ, f"binder/requirements.txt floors differ from pyproject.toml: {differ}"


def test_requirements_stay_installable_before_the_repository_is_copied():
    # A local path (".", "-e .") makes repo2docker copy the repo first: no cached layer.
    assert all(r.url is None for r in _requirements())


def test_runtime_python_agrees_with_pyproject():
    runtime = (BINDER / "runtime.txt").read_text().strip()
    assert re.fullmatch(r"python-3\.\d+", runtime), runtime
    floor = tuple(int(p) for p in _project()["requires-python"].lstrip(">=").split("."))
    assert tuple(int(p) for p in runtime.removeprefix("python-").split(".")) >= floor


@pytest.mark.parametrize("name", SCRIPTS)
def test_scripts_are_executable_bash(name):
    path = BINDER / name
    assert path.read_text().startswith("#!/bin/bash\n")
    assert "set -euo pipefail" in path.read_text()
    assert os.access(path, os.X_OK), f"chmod +x binder/{name}"
    subprocess.run(["bash", "-n", str(path)], check=True)
    git = shutil.which("git")
    if git and (ROOT / ".git").exists():  # what Binder checks out is git's mode, not ours
        mode = subprocess.run([git, "ls-files", "-s", f"binder/{name}"], cwd=ROOT,
                              capture_output=True, text=True, check=True).stdout.split()
        assert not mode or mode[0] == "100755", f"git update-index --chmod=+x binder/{name}"


def test_post_build_installs_the_project_without_touching_dependencies():
    text = (BINDER / "postBuild").read_text()
    assert "pip install" in text and "--no-deps -e ." in text


def test_start_adds_the_projects_jupyter_defaults_and_runs_the_server():
    text = (BINDER / "start").read_text()
    assert text.rstrip().endswith('exec "$@"')
    out = subprocess.run([str(BINDER / "start"), "bash", "-c", "echo $JUPYTER_CONFIG_PATH"],
                         capture_output=True, text=True, check=True,
                         env={"PATH": os.environ["PATH"]}).stdout.strip()
    config_dir = Path(out.split(":")[0])
    assert config_dir == ROOT / "etc/jupyter"
    assert (config_dir / "labconfig/default_setting_overrides.json").is_file()


def test_launch_links_open_a_start_page_that_exists():
    links = [link for doc in (BINDER / "README.md", ROOT / "README.md")
             for link in BINDER_LINK.findall(doc.read_text())]
    assert links, "binder/README.md carries the launch link"
    for link in links:
        urlpath = parse_qs(urlparse(link).query)["urlpath"][0]
        assert urlpath.startswith("lab/tree/"), link
        assert (ROOT / urlpath.removeprefix("lab/tree/")).is_file(), link
