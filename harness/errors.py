"""User-facing errors: the CLI prints these as one line, without a traceback."""


class HarnessError(Exception):
    """An error caused by the user's input (a name, a file, a value), with a readable message."""


class BadAudioError(HarnessError):
    """An audio file that cannot be used; the message names the file and the reason."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"bad audio file {self.path}: {reason}")

    def __reduce__(self):
        # rebuilt from (path, reason) when it crosses a process boundary (the demo's worker pool)
        return (type(self), (self.path, self.reason))


class ConfigError(HarnessError):
    """A configuration key or value that is unknown or invalid."""
