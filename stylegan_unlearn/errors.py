"""Errors the library raises for bad requests (ordinary exceptions; the commands turn them into one line).

* `OptionError` — options that do not fit together ("give either --classifier or --negative-seeds");
  the commands report it as a usage error (exit status 2).
* Anything else a user can fix is a `ValueError` (e.g. `NetworkPklError`) or an `OSError` (e.g. a missing
  file); the commands report it as one line (exit status 1).
"""

__all__ = ["OptionError"]


class OptionError(ValueError):
    """Options that do not fit together; the message names them and says what to do."""
