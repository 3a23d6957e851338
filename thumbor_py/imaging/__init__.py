"""Synchronous Pillow code: geometry, formats, transforms and filters."""
