"""The one exception type for bad input: the CLI prints its message as one line and exits 2."""


class UserError(Exception):
    """Bad input from a user (a file, a record, a config key, a name); the message says which."""
