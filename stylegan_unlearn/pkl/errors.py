"""The one exception type that network-pickle loading and saving raise for bad input."""


class NetworkPklError(ValueError):
    """A network pickle could not be read, recognised or written; the message says what to do."""


class NetworkPklNotFoundError(NetworkPklError, FileNotFoundError):
    """The network pickle does not exist (also a `FileNotFoundError`, for callers that check that)."""
