class UserError(Exception):
    """A mistake in what the user asked for: printed as one line, exit status 2."""


class SimulatorError(Exception):
    """The simulator itself failed (not the firmware it runs, nor the user's
    request): printed as one line, exit status 3."""
