"""Runnable examples of hero: each subpackage is a small program with its own README.md."""
