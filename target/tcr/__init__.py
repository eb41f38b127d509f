"""tcr: tiny container runtime for embedded Linux boards (device side)."""

__version__ = "0.1.0"
