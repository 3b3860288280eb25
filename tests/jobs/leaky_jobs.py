"""A job whose step fails with a secret in the exception text (issue 14 item 4).

The value goes through `SecretValue`, the type every resolved secret becomes, so it is registered
with the redactor exactly as a value from Kubernetes, Vault or a file would be.
"""

from __future__ import annotations

import os

from pilothouse.jobs import StepContext, job
from pilothouse.secrets import SecretValue

leaky = job("leaky")


@leaky.step()
def call_provider(ctx: StepContext) -> None:
    key = SecretValue(os.environ["LEAKY_API_KEY"])
    raise RuntimeError(f"payment provider refused {key.reveal()} (via postgresql://shop:{key.reveal()}@db/x)")
