"""The one exception type the CLI turns into a single clear error line."""


class VeilError(Exception):
    """A user-facing error: bad input, missing file, mismatched checkpoint."""
