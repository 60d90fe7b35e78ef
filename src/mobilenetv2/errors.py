"""The one exception type that the command line turns into a single clear line."""


class UserError(ValueError):
    """Bad input from the user: the message names what is wrong and what is allowed."""
