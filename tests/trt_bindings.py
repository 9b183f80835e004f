"""TensorRT's real Python bindings on a machine without TensorRT's libraries or a GPU.

    python tests/trt_bindings.py prepare     # once: downloads the bindings wheels, builds the stub libraries

The bindings wheels on PyPI (``tensorrt-bindings`` 8.6, ``tensorrt-cu12-bindings`` 10.x and 11.x) are
the pybind11 modules of each TensorRT release, linked against ``libnvinfer.so.N``, ``libnvonnxparser.so.N``,
``libnvinfer_plugin.so.N`` (8.6 also ``libnvparsers.so.8``), which only NVIDIA's own index serves. A stub
library per soname that exports the symbols the module imports, each returning 0, lets ``import tensorrt``
succeed: its classes, enums and docstrings are then the real API of that release, and creating a Builder
fails ("factory function returned nullptr") as TensorRT does without a usable CUDA. Nothing runs on a GPU.

Kept under ``.cache/trt-bindings`` (git-ignored); ``tests/test_tensorrt_api.py`` uses what is there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "trt-bindings"
# What JetPack 6.0 (8.6.2) and 6.1/6.2 (10.3) carry, the newest 10.x, and 11 (refused by edge-vad).
WHEELS = {
    "8.6.1": "tensorrt-bindings==8.6.1",
    "10.3.0": "tensorrt-cu12-bindings==10.3.0",
    "10.13.3.9": "tensorrt-cu12-bindings==10.13.3.9",
    "11.4.0.106": "tensorrt-cu12-bindings==11.4.0.106",
}
SYSTEM_LIBS = ("libstdc++.so.6", "libc.so.6", "libm.so.6", "libgcc_s.so.1")
# tensorrt_bindings imports as itself; edge-vad imports ``tensorrt`` (what the tensorrt packages install).
SHIM = "import sys\nimport tensorrt_bindings\nsys.modules[__name__] = tensorrt_bindings\n"


def _symbols(lib: Path, defined: bool) -> set[str]:
    flag = "--defined-only" if defined else "--undefined-only"
    out = subprocess.run(["nm", "-D", flag, str(lib)], capture_output=True, text=True, check=True).stdout
    return {line.split()[-1].split("@")[0] for line in out.splitlines() if line.strip()}


def _needed(lib: Path) -> list[str]:
    out = subprocess.run(["readelf", "-d", str(lib)], capture_output=True, text=True, check=True).stdout
    return [line.split("[")[1].rstrip("]") for line in out.splitlines() if "(NEEDED)" in line]


def _system_lib(name: str) -> Path:
    out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.strip().startswith(name + " ") and "x86-64" in line:
            return Path(line.split("=>")[1].strip())
    raise FileNotFoundError(name)


def prepare(versions=WHEELS) -> None:
    if shutil.which("gcc") is None or shutil.which("nm") is None:
        raise SystemExit("needs gcc and binutils (apt-get install -y gcc binutils)")
    wheels = CACHE / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    provided = set().union(*(_symbols(_system_lib(n), defined=True) for n in SYSTEM_LIBS))
    for version, spec in versions.items():
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(wheels), spec], check=True)
        name = spec.split("==")[0].replace("-", "_")
        wheel = next(wheels.glob(f"{name}-{version}-cp{sys.version_info[0]}{sys.version_info[1]}-*.whl"))
        root = CACHE / version
        shutil.rmtree(root, ignore_errors=True)
        site, lib = root / "site", root / "lib"
        with zipfile.ZipFile(wheel) as z:
            z.extractall(site)
        (site / "tensorrt").mkdir()
        (site / "tensorrt" / "__init__.py").write_text(SHIM)
        module = next((site / "tensorrt_bindings").glob("tensorrt*.so"))
        missing = sorted(_symbols(module, defined=False) - provided)
        lib.mkdir()
        stub = lib / "stub.c"
        stub.write_text("".join(f"void *{s}(void) {{ return 0; }}\n" for s in missing if s.isidentifier()))
        for soname in _needed(module):
            if soname.startswith("libnv"):
                subprocess.run(["gcc", "-shared", "-fPIC", "-w", "-o", str(lib / soname), str(stub),
                                f"-Wl,-soname,{soname}"], check=True)
        print(f"TensorRT {version}: {wheel.name}, {len(missing)} stub symbols in "
              f"{', '.join(p.name for p in lib.glob('libnv*'))}")


def prepared() -> list[str]:
    return [v for v in WHEELS if (CACHE / v / "lib").is_dir() and (CACHE / v / "site" / "tensorrt").is_dir()]


def run(version: str, code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``code`` in a Python whose ``import tensorrt`` is that release's bindings (and edge-vad from this checkout)."""
    root = CACHE / version
    env = {**os.environ, "LD_LIBRARY_PATH": str(root / "lib"),
           "PYTHONPATH": os.pathsep.join([str(root / "site"), str(REPO)])}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout)


if __name__ == "__main__":
    if sys.argv[1:] != ["prepare"]:
        raise SystemExit(__doc__)
    prepare()
