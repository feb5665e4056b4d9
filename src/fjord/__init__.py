"""fjord: a control plane that turns apps into signed releases that clusters pull with Flux."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fjord")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"
