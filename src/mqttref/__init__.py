"""mqttref: an MQTT broker, client, executable model and conformance oracle."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mqttref")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
