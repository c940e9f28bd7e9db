"""The readers' error, in its own module so every format helper can raise it."""


class GranuleReadError(ValueError):
    """The granule file cannot be turned into a grid; the message says why and what to fix."""
