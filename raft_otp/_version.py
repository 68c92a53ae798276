"""The version of raft_otp: the one place it is written.

``pyproject.toml`` reads it (``[tool.setuptools.dynamic] version``), so the
installed distribution's metadata, ``raft_otp.__version__`` and ``raft-otp
version`` always agree.  Kept in a module of its own, with no imports, so that
setuptools reads it without importing the package and the CLI prints it
without starting anything.
"""

__version__ = "0.1.0"
