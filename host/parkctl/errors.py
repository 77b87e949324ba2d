class UserError(Exception):
    """A mistake in what the user asked for: printed as one line, exit status 2."""
