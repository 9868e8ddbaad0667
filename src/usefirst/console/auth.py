"""Console sign-in: email + password (argon2), then a TOTP code; sessions that expire.

Rules a reviewer should be able to check here:
- a wrong email and a wrong password look the same, and cost the same (argon2 runs either way);
- ``console_max_failed_attempts`` wrong passwords or codes for one email from one client address
  within ``console_lockout_minutes`` lock that email at that address until the oldest of them is
  that old: the right password is refused there too. The lockout is kept per email and address,
  whether an account has the email or not, so its message is the same for a real account and an
  unknown email (no enumeration), and someone failing on purpose from their own address does not
  lock the real owner out at theirs. The account row keeps the count and the latest lockout's
  end (at the address that caused it) for the record. Failures from one address across all
  emails are throttled as well (``sign_in_failures_per_address``), which stops spraying emails;
- a TOTP code is accepted once: the step it belongs to is stored, and that step or an older one is
  refused afterwards (no replay inside the 90-second window);
- the first sign-in enrols TOTP: the secret is shown once (QR code and text), and enrolment
  completes only when a code from it is entered;
- cookies carry a random secret; the database keeps only its SHA-256; sessions end after
  ``console_session_idle_minutes`` idle or ``console_session_max_hours`` in all.

TOTP works on wall time (an authenticator app knows nothing of the sandbox's test clock), so the
console passes the system time here, never the test clock.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy.orm import Session

from usefirst.identity import validation
from usefirst.identity.models import ConsoleAccount, ConsoleSession
from usefirst.identity.repository import IdentityRepository
from usefirst.kit.crypto import FieldCipher
from usefirst.kit.errors import Conflict, NotFound, ValidationFailed
from usefirst.kit.ids import new_id
from usefirst.kit.settings import Settings
from usefirst.kit.throttle import AuthThrottles

TOTP_STEP_SECONDS = 30
TOTP_ISSUER = "usefirst"
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 256
SESSION_COOKIE = "usefirst_session"
# Between the password and the code: long enough to open an authenticator app, no longer.
SECOND_FACTOR_MINUTES = 10

_hasher = PasswordHasher()
# Verified against when the email is unknown, so that both answers take as long.
_UNKNOWN_ACCOUNT_HASH = _hasher.hash(secrets.token_urlsafe(24))


class SignInFailed(Exception):
    """Shown to the person as one sentence; never says which of email or password was wrong."""

    def __init__(
        self,
        reason: str,
        *,
        locked_until: datetime | None = None,
        retry_after_seconds: int | None = None,
    ) -> None:
        super().__init__(reason)
        # wrong_credentials | locked | wrong_code | expired | throttled
        self.reason = reason
        self.locked_until = locked_until
        self.retry_after_seconds = retry_after_seconds


@dataclass(frozen=True)
class SignInGuard:
    """Where a sign-in comes from, and the throttles that count its failures."""

    throttles: AuthThrottles
    client_address: str

    def _email_key(self, email: str) -> str:
        # The email as typed (normalised), known or not: a real and an unknown email are alike.
        return hashlib.sha256(email.strip().lower().encode("utf-8")).hexdigest()

    def refuse_if_throttled(self, email: str) -> None:
        """Raise before any password is checked while this address or this email at this
        address is over its limit."""
        retry_after = self.throttles.sign_in_address.retry_after_seconds(self.client_address)
        if retry_after is not None:
            raise SignInFailed("throttled", retry_after_seconds=retry_after)
        email_key = self._email_key(email)
        lockouts = self.throttles.sign_in_account
        retry_after = lockouts.retry_after_seconds(email_key, self.client_address)
        if retry_after is not None:
            raise SignInFailed(
                "locked",
                locked_until=self._locked_until(email_key),
                retry_after_seconds=retry_after,
            )

    def record_failure(self, email: str) -> datetime | None:
        """Count a wrong password or code; the end of the lockout if this failure started one."""
        self.throttles.sign_in_address.record_failure(self.client_address)
        email_key = self._email_key(email)
        if self.throttles.sign_in_account.record_failure(email_key, self.client_address) is None:
            return None
        return self._locked_until(email_key)

    def _locked_until(self, email_key: str) -> datetime:
        moment = self.throttles.sign_in_account.reset_at(email_key, self.client_address)
        # Whole seconds (never past the true end), so every page shows the same minute for the
        # same lockout.
        return datetime.fromtimestamp(int(moment), tz=UTC)


@dataclass(frozen=True)
class Identity:
    """Who is signed in to the console, and what they may see."""

    account_id: str
    email: str
    kind: str  # operator | merchant
    role: str  # an operator role, or "merchant"
    operator_id: str | None
    merchant_id: str | None


@dataclass(frozen=True)
class NewSession:
    token: str  # goes into the cookie, never stored
    session: ConsoleSession


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def _check_password_rules(password: str) -> None:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise ValidationFailed(
            f"The password must have {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters.",
            field="password",
        )


def create_account(
    session: Session,
    *,
    email: str,
    password: str,
    now: datetime,
    operator_id: str | None = None,
    merchant_id: str | None = None,
) -> ConsoleAccount:
    """A console login for an operator or for one merchant's staff member."""
    if (operator_id is None) == (merchant_id is None):
        raise ValueError("a console account belongs to an operator or to a merchant")
    email = validation.validate_email(email).lower()
    _check_password_rules(password)
    if IdentityRepository(session).console_account_by_email(email) is not None:
        raise Conflict("A console account with this email exists.", field="email")
    account = ConsoleAccount(
        id=new_id("console_account"),
        email=email,
        kind="operator" if operator_id else "merchant",
        operator_id=operator_id,
        merchant_id=merchant_id,
        password_hash=_hasher.hash(password),
        totp_secret_encrypted=None,
        totp_enrolled_at=None,
        last_totp_step=0,
        failed_attempts=0,
        locked_until=None,
        created_at=now,
        disabled_at=None,
    )
    IdentityRepository(session).add_console_row(account)
    session.flush()
    return account


def set_password(session: Session, *, email: str, password: str) -> ConsoleAccount:
    _check_password_rules(password)
    account = IdentityRepository(session).console_account_by_email(email.lower())
    if account is None:
        raise NotFound("No console account with this email.")
    account.password_hash = _hasher.hash(password)
    account.failed_attempts = 0
    account.locked_until = None
    return account


def account_of(session: Session, account_id: str) -> ConsoleAccount | None:
    return IdentityRepository(session).console_account(account_id)


def identity_of(session: Session, account: ConsoleAccount) -> Identity:
    role = "merchant"
    if account.operator_id is not None:
        operator = IdentityRepository(session).get_operator(account.operator_id)
        if operator is None:
            raise NotFound("The operator of this console account no longer exists.")
        role = operator.role
    return Identity(
        account_id=account.id,
        email=account.email,
        kind=account.kind,
        role=role,
        operator_id=account.operator_id,
        merchant_id=account.merchant_id,
    )


def _register_failure(account: ConsoleAccount) -> None:
    """For the record (and admins' eyes): failures since the last success, from any address.
    Refusals are decided per email and address by the SignInGuard, never by this row."""
    account.failed_attempts += 1


def _new_session(
    session: Session, *, account: ConsoleAccount, stage: str, settings: Settings, now: datetime
) -> NewSession:
    token = secrets.token_urlsafe(32)
    lifetime = (
        timedelta(minutes=SECOND_FACTOR_MINUTES)
        if stage == "second_factor"
        else timedelta(hours=settings.console_session_max_hours)
    )
    row = ConsoleSession(
        token_hash=hash_token(token),
        account_id=account.id,
        stage=stage,
        csrf_token=secrets.token_urlsafe(32),
        second_factor_failures=0,
        created_at=now,
        last_seen_at=now,
        expires_at=now + lifetime,
        ended_at=None,
    )
    IdentityRepository(session).add_console_row(row)
    session.flush()
    return NewSession(token=token, session=row)


def check_password(
    session: Session,
    *,
    email: str,
    password: str,
    settings: Settings,
    now: datetime,
    guard: SignInGuard | None = None,
) -> NewSession:
    """First factor. Success opens a session that can only finish the second factor. With a
    ``guard`` (the console always passes one) failures count per address and per email."""
    if guard is not None:
        guard.refuse_if_throttled(email)
    account = IdentityRepository(session).console_account_by_email(email.strip().lower())
    if account is None or account.disabled_at is not None:
        with contextlib.suppress(VerificationError):
            _hasher.verify(_UNKNOWN_ACCOUNT_HASH, password)
        _fail(guard, email, None, reason="wrong_credentials")
    assert account is not None
    try:
        _hasher.verify(account.password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        _fail(guard, email, account, reason="wrong_credentials")
    account.failed_attempts = 0
    if _hasher.check_needs_rehash(account.password_hash):
        account.password_hash = _hasher.hash(password)
    return _new_session(session, account=account, stage="second_factor", settings=settings, now=now)


def _fail(
    guard: SignInGuard | None,
    email: str,
    account: ConsoleAccount | None,
    *,
    reason: str,
) -> None:
    """Count the failure and raise: "locked" when it started a lockout, else ``reason``."""
    if account is not None:
        _register_failure(account)
    locked_until = guard.record_failure(email) if guard is not None else None
    if locked_until is not None:
        if account is not None:
            account.locked_until = locked_until
        raise SignInFailed("locked", locked_until=locked_until)
    raise SignInFailed(reason)


def needs_totp_enrolment(account: ConsoleAccount) -> bool:
    return account.totp_enrolled_at is None


def start_totp_enrolment(
    session: Session, *, account: ConsoleAccount, cipher: FieldCipher
) -> tuple[str, str]:
    """The secret to show (once per sign-in attempt) and its otpauth:// URI for the QR code."""
    if not needs_totp_enrolment(account):
        raise Conflict("TOTP is already enrolled for this account.")
    secret = pyotp.random_base32()
    account.totp_secret_encrypted = cipher.encrypt(secret, field="totp_secret")
    session.flush()
    return secret, provisioning_uri(secret, email=account.email)


def provisioning_uri(secret: str, *, email: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=TOTP_ISSUER)


def _accepted_step(secret: str, code: str, *, after_step: int, now: datetime) -> int | None:
    code = code.strip().replace(" ", "")
    if not (len(code) == 6 and code.isdigit()):
        return None
    totp = pyotp.TOTP(secret)
    current = int(now.timestamp()) // TOTP_STEP_SECONDS
    # One step either side tolerates clock drift and a code typed as it changed.
    for step in (current - 1, current, current + 1):
        if step <= after_step:
            continue
        if hmac.compare_digest(totp.at(step * TOTP_STEP_SECONDS), code):
            return step
    return None


def check_totp(
    session: Session,
    *,
    pending: ConsoleSession,
    code: str,
    cipher: FieldCipher,
    settings: Settings,
    now: datetime,
    guard: SignInGuard | None = None,
) -> ConsoleAccount:
    """Second factor (or the code that completes enrolment). Success activates the session."""
    if pending.stage != "second_factor" or pending.ended_at is not None:
        raise SignInFailed("expired")
    account = account_of(session, pending.account_id)
    if account is None or account.disabled_at is not None or account.totp_secret_encrypted is None:
        raise SignInFailed("expired")
    if guard is not None:
        try:
            guard.refuse_if_throttled(account.email)
        except SignInFailed:
            pending.ended_at = now
            raise
    secret = cipher.decrypt(account.totp_secret_encrypted, field="totp_secret")
    step = _accepted_step(secret, code, after_step=account.last_totp_step, now=now)
    if step is None:
        pending.second_factor_failures += 1
        try:
            _fail(guard, account.email, account, reason="wrong_code")
        except SignInFailed as failure:
            if failure.reason == "locked":
                pending.ended_at = now
            raise
    assert step is not None
    account.last_totp_step = step
    account.failed_attempts = 0
    if account.totp_enrolled_at is None:
        account.totp_enrolled_at = now
    pending.stage = "active"
    pending.last_seen_at = now
    pending.expires_at = now + timedelta(hours=settings.console_session_max_hours)
    # A fresh CSRF token at the privilege change: nothing seen before sign-in stays valid.
    pending.csrf_token = secrets.token_urlsafe(32)
    session.flush()
    return account


def confirm_fresh_code(
    session: Session,
    *,
    operator_id: str,
    code: str,
    cipher: FieldCipher,
    settings: Settings,
    now: datetime,
    guard: SignInGuard,
) -> ConsoleAccount:
    """Step-up for a sensitive act (issuing an API token): a TOTP code from the operator's own
    console sign-in, never used before (replays are refused as at sign-in). Failures count like
    sign-in failures. Raises SignInFailed("wrong_code") when the operator has no enrolled TOTP."""
    account = IdentityRepository(session).console_account_of_operator(operator_id)
    if account is None or account.disabled_at is not None or account.totp_enrolled_at is None:
        raise SignInFailed("wrong_code")
    assert account.totp_secret_encrypted is not None
    guard.refuse_if_throttled(account.email)
    secret = cipher.decrypt(account.totp_secret_encrypted, field="totp_secret")
    step = _accepted_step(secret, code, after_step=account.last_totp_step, now=now)
    if step is None:
        _fail(guard, account.email, account, reason="wrong_code")
    assert step is not None
    account.last_totp_step = step
    account.failed_attempts = 0
    session.flush()
    return account


def find_session(
    session: Session, *, token: str | None, settings: Settings, now: datetime
) -> ConsoleSession | None:
    """The live session of this cookie, touched; None if absent, ended or expired."""
    if not token or len(token) > 100:
        return None
    row = IdentityRepository(session).console_session(hash_token(token))
    if row is None or row.ended_at is not None:
        return None
    idle_limit = timedelta(minutes=settings.console_session_idle_minutes)
    if now >= row.expires_at or now - row.last_seen_at >= idle_limit:
        row.ended_at = now
        return None
    row.last_seen_at = now
    return row


def end_session(session: Session, *, token: str | None, now: datetime) -> None:
    if not token or len(token) > 100:
        return
    row = IdentityRepository(session).console_session(hash_token(token))
    if row is not None and row.ended_at is None:
        row.ended_at = now
