"""Errors the service layer raises for operators; the CLI and API turn them into messages."""


class ServiceError(Exception):
    """A use case refused its input; the message is safe to show to an operator."""


class UserExists(ServiceError):
    """A user with that phone number exists already."""


class UnknownUser(ServiceError):
    """No user has that phone number."""


class InvalidInput(ServiceError):
    """An argument is malformed (phone, PIN, amount, id)."""


class GatewayExists(ServiceError):
    """A Tasker gateway with that id exists already."""
