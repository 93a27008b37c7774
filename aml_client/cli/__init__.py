"""The ``amlc`` command line: a thin layer over the library."""
