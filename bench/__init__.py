"""The side-by-side benchmark: thumbor-py, Thumbor 7.8 and raw Pillow (see bench/run.py)."""
