"""The one error type every decoder raises for a payload it cannot accept."""


class MessageError(ValueError):
    """A payload that is not a valid message of the expected kind; `str()` says why."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"malformed {kind}: {reason}")
        self.kind = kind
        self.reason = reason
