"""The one build step pyproject.toml cannot state: a wheel carries resources/ and examples/.

Code finds them through graph_engine.shipped, which looks in graph_engine/_shipped/ first and in the
checkout after. A wheel installs only what lies inside its packages, so the two top-level folders are
copied there at build time; an editable install (`make`) reads the checkout and copies nothing."""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
SHIPPED = ("resources", "examples")
# README pictures, render outputs, dotfiles (.gitignore, partial downloads) are not part of the product.
SKIP = shutil.ignore_patterns("screenshots", "out", ".*", "__pycache__", "*.pyc")


class BuildPyShipped(build_py):
    def run(self):
        super().run()
        if self.editable_mode:
            return
        for name in SHIPPED:
            dest = Path(self.build_lib) / "graph_engine" / "_shipped" / name
            # dest lies in setuptools' own build folder: a copy an earlier build left there, never the checkout
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(HERE / name, dest, ignore=SKIP)


setup(cmdclass={"build_py": BuildPyShipped})
