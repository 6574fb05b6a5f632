"""Errors the library raises for bad requests (ordinary exceptions; the commands turn them into one line).

* `OptionError` — options that do not fit together ("give either --classifier or --negative-seeds");
  the commands report it as a usage error (exit status 2).
* `MissingDependencyError` — an optional package a feature needs is not installed (matplotlib for the
  report's charts); the message says what to install.
* Anything else a user can fix is a `ValueError` (e.g. `NetworkPklError`) or an `OSError` (e.g. a missing
  file). The commands report all of these as one line (usage errors with exit status 2, the rest 1).
"""

__all__ = ["OptionError", "MissingDependencyError"]


class OptionError(ValueError):
    """Options that do not fit together; the message names them and says what to do."""


class MissingDependencyError(ImportError):
    """An optional dependency is missing; the message names the package to install."""
