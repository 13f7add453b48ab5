"""Package discovery for the one import root ``eegmusic``.

The repository keeps its stage folders (``stream/``, ``decoder/``, ``gui/``, ``offline_training/``,
``replay/``, ``benchmarks/``) at the top level, and the root package's ``__init__.py`` sits beside
them. Installed, each folder becomes ``eegmusic.<folder>``. ``find_namespace_packages`` discovers
every subpackage (``offline_training.models`` and data folders included), so a new folder is never
left out of the wheel; only ``tests`` is excluded. Everything else is declared in ``pyproject.toml``.
"""

from setuptools import find_namespace_packages, setup
from setuptools.command.build_py import build_py

STAGES = ("stream", "decoder", "gui", "offline_training", "replay", "benchmarks")


class BuildPy(build_py):
    """The root package's folder is the repository root: install ``__init__``/``__main__``, not this file."""

    def find_package_modules(self, package, package_dir):
        modules = super().find_package_modules(package, package_dir)
        return [m for m in modules if not (package == "eegmusic" and m[1] == "setup")]


subpackages = find_namespace_packages(
    where=".", include=[f"{stage}*" for stage in STAGES], exclude=["*__pycache__*"],
)
setup(
    packages=["eegmusic", *(f"eegmusic.{name}" for name in subpackages)],
    package_dir={"eegmusic": "."},
    cmdclass={"build_py": BuildPy},
)
