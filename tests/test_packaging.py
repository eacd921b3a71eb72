"""The built distribution: one top-level name in site-packages, ``sorawatch``, and all of
the project in it.

The design's folders ``watcher/``, ``workers/`` and ``templates/`` stay at the top of the
repository and are installed as ``sorawatch.watcher``, ``sorawatch.workers`` and
``sorawatch.templates`` (``package-dir`` in pyproject.toml): a generic top-level name such
as ``workers`` or ``templates`` would collide with any other distribution that ships one.
The wheel is built from what the Dockerfile copies, in a folder of its own (setuptools
leaves ``build/`` behind, and stale files there would end up in the next wheel), and run
from outside the repository, where no editable install can stand in for it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Each folder at the top of the repository → where its files are in the wheel.
INSTALLED_AS = {
    "sorawatch": "sorawatch",
    "watcher": "sorawatch/watcher",
    "workers": "sorawatch/workers",
    "templates": "sorawatch/templates",
}

# Run by the wheel's own files: every module a job names, every template, the lexicon.
SMOKE = """
import importlib, sys
from pathlib import Path
import sorawatch, sorawatch.workers.email
from sorawatch import jobs, render
from sorawatch.watcher.classify import default_classifier
site = Path(sys.argv[1])
for module in ("sorawatch", "sorawatch.workers.email", "sorawatch.templates"):
    assert Path(sys.modules[module].__file__).is_relative_to(site), sys.modules[module]
for path in jobs.ALL:
    module, _, name = path.rpartition(".")
    assert callable(getattr(importlib.import_module(module), name)), path
names = render.environment().list_templates(filter_func=lambda n: not n.endswith((".py", ".pyc")))
assert "email/alert.html.j2" in names and "web/status.html" in names, names
for name in names:
    render.environment().get_template(name)
assert render.TEMPLATES_DIR.is_relative_to(site)
assert (render.TEMPLATES_DIR / "web" / "static" / "style.css").is_file()
from sorawatch.vocabulary import STATUSES
assert all(render.status_label(s, "ar") != s for s in STATUSES)
default_classifier()
print("ok", len(names))
"""


def copied_by_the_dockerfile() -> list[str]:
    """The sources of the Dockerfile's COPY lines: what an image builds the project from."""
    lines = (REPO / "Dockerfile").read_text("utf-8").splitlines()
    return [line.split()[1] for line in lines if line.startswith("COPY ")]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("packaging")
    source = root / "source"
    source.mkdir()
    for name in copied_by_the_dockerfile():
        if (REPO / name).is_dir():
            shutil.copytree(
                REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(REPO / name, source / name)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(root / "dist"), str(source)],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (built,) = (root / "dist").glob("sorawatch-*.whl")
    return built


def test_the_wheel_installs_no_top_level_name_but_sorawatch(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as whl:
        tops = {name.split("/")[0] for name in whl.namelist()}
        top_level = whl.read(next(n for n in whl.namelist() if n.endswith("/top_level.txt")))
    assert {t for t in tops if not t.endswith(".dist-info")} == {"sorawatch"}
    assert top_level.decode().split() == ["sorawatch"]


def test_the_wheel_holds_every_file_of_the_packages(wheel: Path) -> None:
    """pyproject.toml lists the packages by hand: a subpackage or data file left out of
    that list (or out of package-data) is missing here."""
    with zipfile.ZipFile(wheel) as whl:
        shipped = set(whl.namelist())
    expected = {
        f"{target}/{path.relative_to(REPO / folder).as_posix()}"
        for folder, target in INSTALLED_AS.items()
        for path in (REPO / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert sorted(expected - shipped) == []


def test_the_installed_wheel_runs_from_outside_the_repository(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in site.iterdir() if not p.name.endswith(".dist-info")) == [
        "bin",
        "sorawatch",
    ]
    # The wheel's files first on the path; the dependencies come from this environment.
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-c", SMOKE, str(site)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert proc.stdout.startswith("ok ")
