"""Exceptions raised by dotflow_dagster; each names the workflow_id (and what else went wrong)."""

from dotflow.core.exception import InputChangedError as DotflowInputChangedError

__all__ = [
    "FingerprintMismatchError",
    "InputChangedError",
    "RunInProgressError",
    "StepFailedError",
    "StoreError",
    "UnknownFingerprintError",
    "ValidationConflictError",
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
    """No payload is stored for this (workflow_id, fingerprint).

    Attributes:
        workflow_id: the workflow.
        fingerprint: the fingerprint asked for.
        location: the store's location.
        pruned: whether a run decided this fingerprint once, so its payload is gone because
            retention pruned it (see ``DotflowWorkflow``'s ``retention``).
        malformed: whether ``fingerprint`` cannot be a fingerprint at all (e.g. ``'../../etc'``
            as a partition key added by hand); nothing was read or written for it.
    """

    def __init__(
        self, *, workflow_id: str, fingerprint: str, location: str, pruned: bool = False, malformed: bool = False
    ) -> None:
        self.workflow_id = workflow_id
        self.fingerprint = fingerprint
        self.location = location
        self.pruned = pruned
        self.malformed = malformed
        if malformed:
            super().__init__(
                f"{fingerprint!r} is not a fingerprint of workflow {workflow_id!r}, so nothing can be stored for it "
                f"in {location}: a fingerprint is 64 hex digits, or what the workflow's fingerprint_fn returns "
                "(1-128 characters of letters, digits, '.', '_' or '-')"
            )
            return
        if pruned:
            detail = (
                "it was decided before and retention has pruned its payload (it is no longer among the "
                "workflow's most recent decisions); run the payload itself to bring it back"
            )
        else:
            detail = "store it first with DotflowWorkflow.put_payload(...) or run the payload itself"
        super().__init__(
            f"no payload stored for workflow {workflow_id!r} with fingerprint {fingerprint} in {location}; {detail}"
        )

    def __reduce__(self):
        return _rebuild, (
            type(self),
            {
                "workflow_id": self.workflow_id,
                "fingerprint": self.fingerprint,
                "location": self.location,
                "pruned": self.pruned,
                "malformed": self.malformed,
            },
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
    """A stored payload does not hash to the fingerprint it is stored under.

    Attributes:
        workflow_id: the workflow.
        expected: the key the payload is stored under.
        actual: what the payload fingerprints to now.
        hint: the likely cause, shown in the message.
    """

    def __init__(
        self, *, workflow_id: str, expected: str, actual: str, hint: str = "did ignore_paths change?"
    ) -> None:
        self.workflow_id = workflow_id
        self.expected = expected
        self.actual = actual
        self.hint = hint
        super().__init__(
            f"workflow {workflow_id!r}: the payload stored for fingerprint {expected} now fingerprints to "
            f"{actual} ({hint}); refusing to run it under the wrong key"
        )

    def __reduce__(self):
        return _rebuild, (
            type(self),
            {"workflow_id": self.workflow_id, "expected": self.expected, "actual": self.actual, "hint": self.hint},
        )


class ValidationConflictError(InputChangedError):
    """A payload has the identity of a stored payload but other values at ``validate_paths``.

    Raised for workflows with a ``fingerprint_fn``: one identity must not silently carry
    another payload (a redelivered order id with a different amount). Nothing was executed,
    stored or deleted, and the ledger did not move. A subclass of :class:`InputChangedError`, so
    handlers of changed inputs catch it too; both of its fingerprints are the identity.

    Attributes:
        workflow_id: the workflow.
        fingerprint: the identity both payloads share.
        paths: the ``validate_paths`` whose values differ, as the workflow spells them.
        diff_text: one line per difference, values under ``redact_paths`` shown as ``'***'``.
    """

    def __init__(self, *, workflow_id: str, fingerprint: str, paths: tuple[str, ...], diff_text: str) -> None:
        self.workflow_id = workflow_id
        self.fingerprint = fingerprint
        self.previous_fingerprint = fingerprint
        self.current_fingerprint = fingerprint
        self.paths = tuple(paths)
        self.diff_text = diff_text
        Exception.__init__(
            self,
            f"workflow {workflow_id!r}: the payload with identity {fingerprint} differs from the payload stored "
            f"for that identity at validate_paths {', '.join(self.paths)}; refused: nothing was executed, stored "
            "or deleted. One identity must not carry another payload: give this one its own identity, or "
            f"fix whichever payload is wrong.\nchanges:\n{diff_text}",
        )

    def __reduce__(self):
        return _rebuild, (
            type(self),
            {
                "workflow_id": self.workflow_id,
                "fingerprint": self.fingerprint,
                "paths": self.paths,
                "diff_text": self.diff_text,
            },
        )
