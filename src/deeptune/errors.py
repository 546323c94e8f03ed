"""The one exception users see: a bad config value, named by its key."""


class ConfigError(ValueError):
    """A config value that cannot work. The message names the key, the value and what is allowed."""

    def __init__(self, key: str, value, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={value!r} is invalid: {allowed}")

    def __reduce__(self):  # picklable, so that joblib's worker processes can send it back
        return (type(self), (self.key, self.value, self.allowed))


class TrainingError(RuntimeError):
    """Training went wrong in a way the user can act on; the message says how."""
