"""Errors of the disputes domain, each with a stable code."""

from __future__ import annotations

from usefirst.kit.errors import Conflict, UsefirstError, ValidationFailed


class DisputeAlreadyOpen(Conflict):
    code = "dispute_already_open"
    default_message = "This order already has a dispute that is not resolved."


class DisputeAlreadyDecided(Conflict):
    code = "dispute_already_decided"
    default_message = "This side already disputed this order and the dispute was decided."


class DisputeNotAllowed(Conflict):
    code = "dispute_not_allowed"
    default_message = "The order is not in a state that can be disputed for this reason."


class DisputeClosed(Conflict):
    code = "dispute_closed"
    default_message = "The dispute is resolved; it takes no more evidence or decisions."


class RespondentDeadlinePassed(Conflict):
    code = "dispute_respond_by_passed"
    default_message = "The deadline to answer this dispute has passed; it is decided by default."


class EvidenceTooLarge(UsefirstError):
    status_code = 413
    code = "evidence_too_large"
    default_message = "The evidence file is larger than allowed."


class EvidenceTypeNotAllowed(UsefirstError):
    status_code = 415
    code = "evidence_type_not_allowed"
    default_message = "Evidence must be a PDF, PNG, JPEG, plain-text or JSON file."


class EvidenceFilenameInvalid(ValidationFailed):
    code = "evidence_filename_invalid"
    default_message = "The file name is not acceptable."


class EvidenceCorrupted(UsefirstError):
    """The stored bytes no longer hash to what was recorded: never serve them."""

    status_code = 500
    code = "evidence_corrupted"
    default_message = "The stored evidence file does not match its recorded SHA-256."
