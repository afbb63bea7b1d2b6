"""m2m: an open-source, wire-compatible implementation of an operator's M2M SIM-management API."""

__version__ = "0.1.0"
