"""Exception types whose messages are meant for the user (CLI line, GUI dialog).

Each message says what was expected, what came, and what to do.
"""


class TaggerError(Exception):
    """Base class of every error this project raises on bad input."""


class AudioError(TaggerError):
    """An audio file cannot be decoded (missing, empty, corrupt, unsupported)."""


class ModelFileError(TaggerError):
    """A model file or directory is not a model this program can load."""


class ConfigError(TaggerError, ValueError):
    """A configuration value or override is invalid."""


class ExportError(TaggerError):
    """An export file could not be written (disk full, no permission, ...); files already written are complete."""


class ExportExistsError(TaggerError, FileExistsError):
    """An export target already exists and overwriting was not asked for (--force / overwrite=True)."""

    def __init__(self, message: str, paths: list = ()):
        super().__init__(message)
        self.paths = list(paths)    # the targets that exist
