"""The errors users see, each one line: a bad config value, training gone wrong, or an exception
raised inside what a config node built."""

import sys

MAX_VALUE = 200  # characters of a bad value shown in a message (a path fits)


def shown(value) -> str:
    """repr(value), cut short: a 400-digit number or a pasted paragraph stays one short line."""
    text = repr(value)
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 12] + f"…({len(text)} chars)"


class ConfigError(ValueError):
    """A config value that cannot work. The message names the key, the value and what is allowed."""

    def __init__(self, key: str, value, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={shown(value)} is invalid: {allowed}")

    def __reduce__(self):  # picklable, so that joblib's worker processes can send it back
        return (type(self), (self.key, self.value, self.allowed))


class TrainingError(RuntimeError):
    """Training went wrong in a way the user can act on; the message says how."""


class NodeError(RuntimeError):
    """Any other exception, raised while building or fitting: named by the config node whose
    object raised it (`model`, `optimizer`, `callbacks.grad_health`, ...), with the log file
    that holds its traceback."""

    def __init__(self, node: str | None, error: str, message: str, log_file: str | None = None):
        self.node, self.error, self.message, self.log_file = node, error, message, log_file
        where = f" (full traceback in {log_file})" if log_file else ""
        node_text = f"{node}: " if node else ""
        super().__init__(f"{node_text}{error}: {message}{where}")

    @classmethod
    def of(cls, node: str | None, err: BaseException, log_file=None) -> "NodeError":
        lines = [ln for ln in str(err).splitlines() if ln.strip()]
        message = lines[0][:300] if lines else "(no message)"
        return cls(node, type(err).__name__, message, str(log_file) if log_file else None)

    def __reduce__(self):
        return (type(self), (self.node, self.error, self.message, self.log_file))


def fail(message: str, status: int = 2) -> None:
    """Print `error: <message>` on stderr and exit with `status` (2: bad input, 1: the run)."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(status)


class Interrupted(BaseException):
    """The run was stopped by a signal: SIGTERM (a scheduler's time limit, preemption, `timeout`,
    `kill`) or SIGINT (Ctrl-C). A BaseException, like KeyboardInterrupt, so that nothing on the
    way up (Hydra's job runner, a sweeper) records it as a failed job; the entry point prints one
    line and exits 128 + the signal's number, as shells expect (143, 130)."""

    def __init__(self, signum: int, where: str = ""):
        self.signum, self.where = int(signum), where
        super().__init__(signum, where)

    @property
    def name(self) -> str:
        import signal

        return signal.Signals(self.signum).name

    @property
    def exit_status(self) -> int:
        return 128 + self.signum

    def __reduce__(self):
        return (type(self), (self.signum, self.where))

    def __str__(self) -> str:
        where = f" {self.where}" if self.where else ""
        return f"stopped by {self.name}{where}"
