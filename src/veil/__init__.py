"""Veil: privacy-preserving camera analytics with learned on-camera obfuscators."""

__version__ = "0.1.0"
