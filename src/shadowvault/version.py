"""The package version, in a module of its own so that any layer may read it without loading the API."""

__version__ = "0.1.0"
