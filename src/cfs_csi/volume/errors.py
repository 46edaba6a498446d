"""The one error type of the pure layer."""


class InvalidArgument(ValueError):
    """Input that no retry can fix; the driver answers INVALID_ARGUMENT with this message."""
