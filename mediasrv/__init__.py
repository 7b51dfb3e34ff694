"""mediasrv: an embeddable WebRTC selective forwarding unit for Python, with plugins."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mediasrv")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
