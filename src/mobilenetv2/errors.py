"""The one exception type that the command line turns into a single clear line."""


class UserError(ValueError):
    """Bad input from the user: the message names what is wrong and what is allowed."""


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its type when it has none): what a one-line error quotes."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__
