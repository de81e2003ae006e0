"""Command-line entry points: the only code that prints or exits."""
