"""envplane: an environment plane for workflow engines."""

__version__ = "0.1.0"
