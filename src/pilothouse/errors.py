"""Errors a user can cause, and how the CLI reports them.

PilothouseError                 base of everything raised on purpose; never shown as a traceback
├── ConfigError                 the config file or an override is wrong (CLI exit 2)
├── UsageError                  an argument names nothing that exists: an unknown job, a
│                               missing directory (CLI exit 2)
├── SecretError                 a referenced secret cannot be resolved
└── OperationError              an operation (drain, job, backup...) failed (CLI exit 1)
"""

from __future__ import annotations


class PilothouseError(Exception):
    """Base class: an expected failure with a message fit for the user."""

    exit_code = 1


class ConfigError(PilothouseError):
    """The configuration is invalid; the message names file, key, value and expectation."""

    exit_code = 2


class UsageError(PilothouseError):
    """The command line names something that does not exist (a job, a job id, a directory)."""

    exit_code = 2


class SecretError(PilothouseError):
    """A secret reference could not be resolved; names the secret and sources, never a value."""

    exit_code = 2


class OperationError(PilothouseError):
    """An operator command could not complete."""

    exit_code = 1
