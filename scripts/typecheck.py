#!/usr/bin/env python3
"""Run mypy --strict over the package ``sorawatch`` as it is installed.

    .venv/bin/python scripts/typecheck.py                # every module, the project's config
    .venv/bin/python scripts/typecheck.py --cache-dir D  # further arguments go to mypy

``watcher/``, ``workers/`` and ``templates/`` are installed as ``sorawatch.watcher``,
``sorawatch.workers`` and ``sorawatch.templates`` (``package-dir`` in pyproject.toml).
mypy cannot see that. It names a module after the folders it sits in
(``watcher/poll.py`` → ``watcher.poll``), and it cannot follow the import hook of an
editable install. So this builds, in a temporary folder, a ``sorawatch/`` whose entries
are symbolic links to those of the real ``sorawatch/`` plus the three folders, checks
``-p sorawatch`` there with the project's mypy settings, and prints mypy's report with
each path turned back into the file's path in the repository.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Each folder at the top of the repository installed as sorawatch.<folder>.
MAPPED = ("watcher", "workers", "templates")


def link_tree(root: Path) -> None:
    """``root/sorawatch``: the package as installed, made of links into the repository."""
    package = root / "sorawatch"
    package.mkdir()
    for entry in sorted((REPO / "sorawatch").iterdir()):
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for folder in MAPPED:
        (package / folder).symlink_to(REPO / folder)


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="sorawatch-typecheck-") as tmp:
        link_tree(Path(tmp))
        # A cache of its own: one written by plain mypy in the repository, which cannot
        # find sorawatch.watcher, would be taken for this tree's.
        default_cache = ["--cache-dir", str(REPO / ".mypy_cache" / "installed-layout")]
        cache = [] if "--cache-dir" in argv else default_cache
        config = ["--config-file", str(REPO / "pyproject.toml")]
        proc = subprocess.run(
            [sys.executable, "-m", "mypy", *config, *cache, "-p", "sorawatch", *argv],
            cwd=tmp, capture_output=True, text=True, check=False,
        )  # fmt: skip
    mapped = re.compile(rf"^sorawatch/({'|'.join(MAPPED)})/", re.MULTILINE)
    sys.stdout.write(mapped.sub(r"\1/", proc.stdout))
    sys.stderr.write(proc.stderr)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
