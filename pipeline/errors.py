"""Errors an operator must hear about: caught at the CLI and worker edges, shown as one line."""


class IntakeError(Exception):
    """Base class: the message is the one line the operator reads."""


class ConfigError(IntakeError):
    pass


class MailboxError(IntakeError):
    pass
