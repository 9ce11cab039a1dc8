"""The errors ``perception`` reports as one line (``perception <command>: error: <message>``, exit code 2)
instead of a traceback: their messages are written for the person who typed the command and name the file
or the parameter at fault. Anything else is a bug and keeps its traceback."""


class CommandError(Exception):
    """A command cannot run as asked for a reason that is no bad value or missing file (a missing optional
    package, an input its library refused with another error type); the message says what to do."""


# ValueError covers the project's own input errors (perception.replay SourceError / TopicError,
# perception.ros MessageError subclass it); FileExistsError: an output that --overwrite would replace.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, CommandError)
