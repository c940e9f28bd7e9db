"""What can go wrong talking to a STAC API."""


class StacApiError(RuntimeError):
    """The STAC API refused a request, or could not be reached after the retries."""


class DuplicateItemError(StacApiError):
    """The dataset's duplicate policy says ``error`` for the item already in the API."""
