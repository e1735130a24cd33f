"""Benchmarks of autocontinue: cost, speed and length against the loops people use today.

``python -m bench`` runs them all and rewrites docs/benchmarks.md (see bench/__main__.py).
"""
