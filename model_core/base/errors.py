"""The one exception type for errors a user can cause (bad audio, rig, checkpoint, settings)."""


class LaliaError(Exception):
    """A problem the user can fix; the message says what is wrong and what to do."""
