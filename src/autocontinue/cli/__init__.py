"""The ``autocontinue`` command line (click): run, resume, runs, show, models, demo, emulate."""

from .app import cli, main

__all__ = ["cli", "main"]
