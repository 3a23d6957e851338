"""Loader plugins: one module per backend (``file``, ``http``, ``s3``)."""
