"""The exception hierarchy of the hub runtime (habit 6)."""


class HubException(Exception):
    """An error whose message is meant for the client.

    Raised from a hub method, its text reaches the caller (prefixed as ASP.NET Core does:
    `An unexpected error occurred invoking 'X' on the server. HubException: <text>`). Any
    other exception reaches the client only as the generic prefix, unless detailed errors
    are enabled.
    """


class BindingError(Exception):
    """Arguments of an invocation do not fit the hub method's parameters."""
