"""Build mediasrv: the Python control plane and the Cython data plane (``mediasrv._core``).

Environment knobs (all optional):

* ``MEDIASRV_TRACE=1``   build with Cython line tracing (coverage/profilers see .pyx lines)
* ``MEDIASRV_ANNOTATE=1`` write Cython's HTML annotation next to the sources
* ``MEDIASRV_LIBSRTP=system`` link the system's libsrtp2 (found by pkg-config) instead of the
  static OpenSSL-backed build in ``build/libsrtp`` that ``make libsrtp`` makes
* ``CFLAGS``/``LDFLAGS`` are honoured as usual (``make asan-test`` adds ``-fsanitize=address``)
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from setuptools import Extension, find_packages, setup

CYTHON_VERSION = "3.3.1"


LIBSRTP_HINT = (
    "run `make libsrtp` (builds libsrtp2 on OpenSSL into build/libsrtp), or set "
    "MEDIASRV_LIBSRTP=system to link the system's libsrtp2 (apt-get install libsrtp2-dev)"
)


def _pkg_config(package: str, path: str | None) -> dict[str, list[str]]:
    """Compile and link flags from pkg-config, looking in `path` first (static linking there)."""
    if shutil.which("pkg-config") is None:
        raise SystemExit("pkg-config not found: install it first (apt-get install pkg-config)")
    env = dict(os.environ)
    args = ["pkg-config"]
    if path is not None:
        env["PKG_CONFIG_PATH"] = path
        args.append("--static")
    try:
        cflags = subprocess.check_output([*args, "--cflags", package], text=True, env=env)
        libs = subprocess.check_output([*args, "--libs", package], text=True, env=env)
    except subprocess.CalledProcessError:
        raise SystemExit(f"{package} not found by pkg-config: {LIBSRTP_HINT}") from None
    return {
        "include_dirs": [f[2:] for f in cflags.split() if f.startswith("-I")],
        "extra_compile_args": [f for f in cflags.split() if not f.startswith("-I")],
        "library_dirs": [f[2:] for f in libs.split() if f.startswith("-L")],
        "libraries": [f[2:] for f in libs.split() if f.startswith("-l")],
        "extra_link_args": [f for f in libs.split() if f[:2] not in ("-L", "-l")],
    }


def _libsrtp() -> dict[str, list[str]]:
    """libsrtp2: the static OpenSSL build in build/libsrtp by default, or the system's."""
    if os.environ.get("MEDIASRV_LIBSRTP") == "system":
        return _pkg_config("libsrtp2", None)
    prefix = Path(os.environ.get("MEDIASRV_LIBSRTP_PREFIX", "build/libsrtp")).resolve()
    pc_dir = prefix / "lib" / "pkgconfig"
    if not (pc_dir / "libsrtp2.pc").exists():
        raise SystemExit(f"libsrtp2 not found in {prefix}: {LIBSRTP_HINT}")
    return _pkg_config("libsrtp2", str(pc_dir))


def _extensions() -> list[Extension]:
    import Cython
    from Cython.Build import cythonize

    if Cython.__version__ != CYTHON_VERSION:
        raise SystemExit(
            f"mediasrv is built with Cython {CYTHON_VERSION}, found {Cython.__version__}"
        )

    srtp = _libsrtp()
    trace = os.environ.get("MEDIASRV_TRACE") == "1"
    macros = [("CYTHON_TRACE_NOGIL", "1")] if trace else []
    core = Extension(
        "mediasrv._core",
        sources=["cext/_core.pyx"],
        include_dirs=["cext", "cext/includes", *srtp["include_dirs"]],
        library_dirs=srtp["library_dirs"],
        libraries=srtp["libraries"],
        extra_compile_args=["-O2", "-Wno-unused-function", *srtp["extra_compile_args"]],
        extra_link_args=srtp["extra_link_args"],
        define_macros=macros,
    )
    return cythonize(
        [core],
        include_path=["cext", "cext/includes"],
        annotate=os.environ.get("MEDIASRV_ANNOTATE") == "1",
        compiler_directives={
            "language_level": "3",
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "embedsignature": True,
            "linetrace": trace,
        },
    )


setup(
    name="mediasrv",
    version="0.1.0",
    description="An embeddable WebRTC selective forwarding unit for Python, with plugins",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11",
    # bench: the load generator behind `mediasrv-bench` (and the benchmarks beside it)
    packages=find_packages(include=["mediasrv", "mediasrv.*", "bench"]),
    package_data={"mediasrv": ["py.typed", "*.pyi", "static/*.js"]},
    ext_modules=_extensions(),
    install_requires=[
        "aiohttp>=3.9",
        "aiortc>=1.9",
        "aioice>=0.9",
        "cryptography>=42",
        "pyOpenSSL>=24",
        "av>=12",
        "numpy>=1.26",
        "pyee>=11",
        "prometheus-client>=0.20",
        "uvloop>=0.19",
        "redis>=5.0",  # the cluster directory of several nodes (ServerConfig.cluster)
    ],
    extras_require={
        "test": [
            "hypothesis>=6.100",
            "matplotlib>=3.8",
            "mypy==2.4.1",
            "playwright>=1.45",
            "pylibsrtp>=0.10",
            "pytest>=8",
            "pytest-benchmark>=4",
            "ruff==0.17.6",
        ],
        "bench": ["matplotlib>=3.8"],
    },
    entry_points={
        "console_scripts": [
            "mediasrv = mediasrv.cli:main",
            "mediasrv-rec = mediasrv.recording.rec_cli:main",
            "mediasrv-bench = bench.loadgen:main",
        ]
    },
    zip_safe=False,
)
