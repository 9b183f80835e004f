"""Only what pyproject.toml cannot say: ship the top-level ``profiles/`` and ``firmware_configs/``
folders inside the package, where an installed ``edge_vad.shipped`` looks for them."""

import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

sys.path.insert(0, str(Path(__file__).resolve().parent))
from edge_vad.shipped import SHIPPED  # noqa: E402  (stdlib-only module: importable at build time)


class BuildPyWithShipped(build_py):
    def run(self):
        super().run()
        for name in SHIPPED:
            self.copy_tree(name, str(Path(self.build_lib) / "edge_vad" / "assets" / name))


setup(cmdclass={"build_py": BuildPyWithShipped})
