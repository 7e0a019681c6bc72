"""Packaging hook: the wheel carries the server's build context and the shipped presets.

`image: bundled` builds the server exactly as it ships with the installed CLI, so the wheel
holds server/Dockerfile, server/.dockerignore, server/pyproject.toml, server/README.md and
server/flux_server/** as package data (intelligensi_deploy/_server/), and presets/*.yaml
(intelligensi_deploy/_presets/). Never server/.build-extra/ (local wheels, CA bundle) nor
tests or caches. An editable install uses the checkout's server/ and presets/ directly.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SERVER_TOP_FILES = ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md")
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", "*.egg-info", ".pytest_cache")


class BuildPyWithServer(build_py):
    """build_py, then copy the server context and presets into the built package."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        package = Path(self.build_lib) / "intelligensi_deploy"
        server = package / "_server"
        shutil.rmtree(server, ignore_errors=True)
        server.mkdir(parents=True)
        for name in SERVER_TOP_FILES:
            if (ROOT / "server" / name).is_file():
                shutil.copy2(ROOT / "server" / name, server / name)
        shutil.copytree(ROOT / "server" / "flux_server", server / "flux_server", ignore=SKIP)
        presets = package / "_presets"
        shutil.rmtree(presets, ignore_errors=True)
        presets.mkdir()
        for path in sorted((ROOT / "presets").glob("*.yaml")):
            shutil.copy2(path, presets / path.name)


setup(cmdclass={"build_py": BuildPyWithServer})
