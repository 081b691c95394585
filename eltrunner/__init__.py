"""The runner side of the ELT runs control plane: a client for the runner API and the
``elt-gateway`` agent. Needs only httpx (no Django)."""

__version__ = "0.1.0"

from eltrunner.client import (
    RequestRefused,
    RetryPolicy,
    RunConflict,
    RunnerClient,
    RunnerError,
    RunNotFound,
    Stopped,
    TokenRefused,
)
from eltrunner.reporter import RunReporter

__all__ = [
    "RequestRefused",
    "RetryPolicy",
    "RunConflict",
    "RunNotFound",
    "RunReporter",
    "RunnerClient",
    "RunnerError",
    "Stopped",
    "TokenRefused",
    "__version__",
]
