"""Exceptions raised by dotflow_dagster; each names the workflow_id (and what else went wrong)."""

from dotflow.core.exception import InputChangedError as DotflowInputChangedError

__all__ = [
    "FingerprintMismatchError",
    "InputChangedError",
    "RunInProgressError",
    "StepFailedError",
    "StoreError",
    "UnknownFingerprintError",
]


def _rebuild(cls: type, fields: dict) -> Exception:
    return cls(**fields)


class InputChangedError(DotflowInputChangedError):
    """The payload for a workflow_id changed and the policy is ``raise``.

    Subclasses dotflow's own ``InputChangedError`` so handlers written for plain dotflow keep
    working. Nothing was executed and nothing was deleted.

    Attributes:
        workflow_id: the workflow whose input changed.
        previous_fingerprint: the ledger's current fingerprint.
        current_fingerprint: the refused payload's fingerprint.
        diff_text: a short readable diff, redacted, one change per line.
    """

    def __init__(
        self,
        *,
        workflow_id: str,
        previous_fingerprint: str,
        current_fingerprint: str,
        diff_text: str,
    ) -> None:
        self.workflow_id = workflow_id
        self.previous_fingerprint = previous_fingerprint
        self.current_fingerprint = current_fingerprint
        self.diff_text = diff_text
        # dotflow's __init__ formats its own message; ours carries both fingerprints and the diff.
        Exception.__init__(
            self,
            f"input for workflow {workflow_id!r} changed from fingerprint {previous_fingerprint} "
            f"to {current_fingerprint} and on_input_change='raise'; nothing was executed or deleted.\n"
            f"changes:\n{diff_text}",
        )

    def __reduce__(self):
        # Queues (Celery, multiprocessing) pickle exceptions; keyword-only __init__ needs this.
        return _rebuild, (type(self), {
            "workflow_id": self.workflow_id,
            "previous_fingerprint": self.previous_fingerprint,
            "current_fingerprint": self.current_fingerprint,
            "diff_text": self.diff_text,
        })


class RunInProgressError(RuntimeError):
    """Another run of the same workflow_id holds the run lock (one open execution per id)."""

    def __init__(self, *, workflow_id: str, holder: str = "") -> None:
        self.workflow_id = workflow_id
        self.holder = holder
        detail = f" (held by {holder})" if holder else ""
        super().__init__(
            f"workflow {workflow_id!r} is already running{detail}; at most one run per workflow_id "
            "executes at a time, retry when it has finished"
        )

    def __reduce__(self):
        return _rebuild, (type(self), {"workflow_id": self.workflow_id, "holder": self.holder})


class UnknownFingerprintError(LookupError):
    """No payload is stored for this (workflow_id, fingerprint)."""

    def __init__(self, *, workflow_id: str, fingerprint: str, location: str) -> None:
        self.workflow_id = workflow_id
        self.fingerprint = fingerprint
        super().__init__(
            f"no payload stored for workflow {workflow_id!r} with fingerprint {fingerprint} in {location}; "
            "store it first with DotflowWorkflow.put_payload(...) or run the payload itself"
        )
        self.location = location

    def __reduce__(self):
        return _rebuild, (
            type(self),
            {"workflow_id": self.workflow_id, "fingerprint": self.fingerprint, "location": self.location},
        )


class StoreError(RuntimeError):
    """A store object is unreadable (corrupt, foreign, or from an incompatible version)."""


class StepFailedError(RuntimeError):
    """A step failed (raised by ``run(..., raise_on_failure=True)``); the report says the rest.

    Attributes:
        report: the failed run's ``RunReport``.
    """

    def __init__(self, report: "RunReport") -> None:  # noqa: F821 - avoids an import cycle
        self.report = report
        super().__init__(
            f"workflow {report.workflow_id!r} (fingerprint {report.fingerprint}) failed at step "
            f"{report.failed_step!r}: {report.error}; running the same payload again resumes at that step"
        )

    def __reduce__(self):
        # BaseException pickles its args (the message), not the report this __init__ needs; a
        # multiprocessing.Pool whose worker raised it would hang unpickling the error.
        return type(self), (self.report,)


class FingerprintMismatchError(ValueError):
    """A stored payload does not hash to the fingerprint it is stored under."""

    def __init__(self, *, workflow_id: str, expected: str, actual: str) -> None:
        self.workflow_id = workflow_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"workflow {workflow_id!r}: the payload stored for fingerprint {expected} now fingerprints to "
            f"{actual} (did ignore_paths change?); refusing to run it under the wrong key"
        )

    def __reduce__(self):
        return _rebuild, (type(self), {"workflow_id": self.workflow_id, "expected": self.expected, "actual": self.actual})
