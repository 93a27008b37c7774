"""The release, in one place: the package's ``__version__``, the wheel's version (pyproject.toml
reads it from here) and the ``User-Agent`` every request carries."""

__version__ = "0.2.0"
