"""Errors that the command line reports as one clear line, without a traceback."""


class UserError(Exception):
    """An error caused by user input (a bad file, option or model path).

    The CLI prints its message and exits with status 2. The message names the input and says what was expected.
    """
