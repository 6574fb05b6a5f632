"""Bundled assets (the small MNIST generator and judge)."""
