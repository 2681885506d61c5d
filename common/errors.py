"""One family for every error Halo-Lipsy raises on bad input or setup: ComfyUI shows its message,
the command line prints it and exits 2. The message's prefix is added here, once. Plain Python."""

PREFIX = "Halo-Lipsy: "


class HaloLipsyError(ValueError):
    """Bad input or setup; the message says what to do (and starts with PREFIX)."""

    def __init__(self, message: str = ""):
        message = str(message)
        super().__init__(message if message.startswith(PREFIX) else PREFIX + message)
