"""Exceptions parsers raise for what a county must hear about."""


class UnreadableFile(Exception):
    """An attachment cannot be opened. `reason` is a short Chinese phrase for the reply."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class NotAForm(Exception):
    """A readable document that is not a recommendation form."""
