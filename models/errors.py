"""The one user-facing error type: its message names the file, field or value at fault."""


class VidcolorError(Exception):
    """A problem with the user's input or environment; the CLI prints it without a traceback."""
