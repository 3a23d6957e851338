"""Built-in ``smart`` crop detectors (the :class:`thumbor_py.plugins.Detector` Protocol)."""
