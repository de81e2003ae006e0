"""keyless: a self-hostable, Sigstore-compatible keyless code-signing system."""

__version__ = "0.1.0"
