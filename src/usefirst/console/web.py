"""The web console: server-rendered pages (Jinja2) for operators and merchants' staff.

Every page runs in one transaction that also checks and touches the session. Forms carry a CSRF
token: before sign-in a random token in a cookie (double submit), after sign-in the session's own
token. Responses carry a Content-Security-Policy without inline scripts or styles.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Protocol

import segno
from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from usefirst.api.text_rules import breaks_text_rule
from usefirst.collections import service as collections_service
from usefirst.console import auth, charts, i18n
from usefirst.console.repository import DashboardRepository, PeopleRepository
from usefirst.console.support_repository import SupportCounts
from usefirst.identity.models import ConsoleSession
from usefirst.identity.service import OPERATOR_ROLES
from usefirst.kit.clock import Clock, SystemClock
from usefirst.kit.errors import UsefirstError, ValidationFailed
from usefirst.kit.idempotency import fingerprint, run_idempotent, stored_response
from usefirst.runtime import Runtime, Work

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=HERE / "templates")


templates.env.add_extension("jinja2.ext.i18n")
templates.env.filters["local_time"] = i18n.local_time
router = APIRouter(prefix="/console", include_in_schema=False)

LOGIN_CSRF_COOKIE = "usefirst_login_csrf"
LANGUAGE_COOKIE = "usefirst_lang"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; connect-src 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
# Signing in runs on wall time, not on the runtime's clock: TOTP codes come from a phone that keeps
# real time, and sessions and lock-outs last real minutes even after a sandbox test clock moved
# business time forward (webhooks are signed with wall time likewise).
SIGN_IN_CLOCK: Clock = SystemClock()
# Who may open which page. Merchants' staff have a portal of their own.
PAGE_ROLES: dict[str, tuple[str, ...]] = {
    "dashboard": OPERATOR_ROLES,
    "merchant": ("merchant",),
    "collections": ("collector", "admin"),
    "risk": ("risk_analyst", "admin"),
    "compliance": ("compliance", "admin"),
    # Export and erasure: compliance only, as the API allows (/v1/shoppers/{id}/export, /erasure).
    "compliance_shopper": ("compliance",),
    # The rules decide checkouts (risk); the ladder decides how shoppers are contacted (compliance).
    "config_rules": ("risk_analyst", "admin"),
    "config_ladder": ("compliance", "admin"),
    # API keys and operator tokens: admins only (revocation is theirs on the API too).
    "credentials": ("admin",),
    # The shopper's options, as the API allows each role: an order with its hardship requests and
    # auto-debit attempts (GET /v1/orders/{id}/charges, /hardship: collector, support, admin)...
    "orders": ("support", "collector", "admin"),
    # ...its payoff quote and the due-date extension (support, admin)...
    "order_options": ("support", "admin"),
    # ...hardship requests: opened for a shopper and answered (collector, support, admin)...
    "hardship": ("collector", "support", "admin"),
    # ...a shopper's credit balance and its refund (support, admin)...
    "support_shopper": ("support", "admin"),
    # ...and the reconciliation breaks (admin, as GET /v1/rails/reconciliation/breaks).
    "reconciliation": ("admin",),
}


@dataclass
class Page:
    """What every signed-in page needs: the work unit, who is signed in, their language."""

    request: Request
    runtime: Runtime
    work: Work
    identity: auth.Identity
    session_row: ConsoleSession
    language: str

    def nav_counts(self) -> dict[str, int]:
        """How much work waits behind each menu entry the role sees (one count query each)."""
        if self.identity.kind != "operator":
            return {}
        repository = DashboardRepository(self.work.session)
        role = self.identity.role
        counts: dict[str, int] = {}
        if role in PAGE_ROLES["collections"]:
            counts["collections"] = repository.overdue_order_count()
        if role in PAGE_ROLES["risk"]:
            counts["risk"] = repository.open_risk_cases()
        if role in PAGE_ROLES["compliance"]:
            counts["complaints"] = repository.unanswered_complaints(self.work.now)[0]
        if role in PAGE_ROLES["hardship"]:
            counts["hardship"] = SupportCounts(self.work.session).unanswered_hardships()
        return counts

    def render(self, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
        people = PeopleRepository(self.work.session).operator_emails()
        values.setdefault("nav_counts", self.nav_counts())

        def person(operator_id: str | None) -> str:
            """An operator by email, not by id (the id where the operator is unknown)."""
            return people.get(operator_id, operator_id) if operator_id else ""

        return render(
            self.request,
            template,
            status_code=status_code,
            language=self.language,
            identity=self.identity,
            csrf_token=self.session_row.csrf_token,
            time_zone=self.runtime.settings.time_zone,
            person=person,
            form_token=secrets.token_urlsafe(18),
            **values,
        )


class SignInRequired(Exception):
    pass


class PageForbidden(Exception):
    def __init__(self, language: str) -> None:
        super().__init__("forbidden")
        self.language = language


class CsrfRejected(Exception):
    def __init__(self, language: str) -> None:
        super().__init__("csrf")
        self.language = language


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def language_of(request: Request) -> str:
    return i18n.pick_language(
        request.query_params.get("lang") or request.cookies.get(LANGUAGE_COOKIE),
        request.headers.get("accept-language"),
    )


def is_secure(request: Request) -> bool:
    return bool(runtime_of(request).settings.console_secure_cookies) or (
        request.url.scheme == "https"
    )


def words_of(language: str) -> dict[str, Any]:
    """What every template uses to show words, codes, money and times in ``language``; gettext
    and ngettext also serve Jinja's ``{% trans %}`` blocks."""
    catalog = i18n.translations(language)

    def t(key: str, **format_values: str) -> str:
        return i18n.translate(key, language, **format_values)

    def tn(key: str, count: int, **format_values: str) -> str:
        return i18n.translate_plural(key, count, language, **format_values)

    def label(family: str, code: str | None) -> Markup:
        return i18n.label(family, code, language)

    def badge(family: str, code: str | None, element_id: str = "") -> Markup:
        """A status as coloured text: the colour comes from the code, the words from the
        catalog, so the status never rests on colour alone."""
        if not code:
            return Markup("")
        return Markup('<span class="badge {} {}"{}>{}</span>').format(
            f"badge-{family}",
            f"badge-{code}",
            Markup(' id="{}"').format(element_id) if element_id else "",
            i18n.label(family, code, language),
        )

    def step_label(step: str | None) -> Markup:
        return i18n.step_label(step, language)

    def reason_label(reason: str | None) -> Markup:
        return i18n.contact_reason(reason, language)

    def when(moment: datetime | None, time_zone: str) -> str:
        return i18n.local_time(moment, time_zone, language)

    return {
        "t": t,
        "tn": tn,
        "code_label": label,
        "badge": badge,
        "money": i18n.money,
        "when": when,
        "step_label": step_label,
        "free_text": lambda text: i18n.free_text(text, language),
        "reason_label": reason_label,
        "day": lambda value: i18n.local_date(value, language),
        "gettext": catalog.gettext,
        "ngettext": catalog.ngettext,
        "lang": language,
        "other_lang": "en" if language == "zh" else "zh",
    }


def render(
    request: Request, template: str, *, status_code: int = 200, language: str, **values: Any
) -> HTMLResponse:
    response = templates.TemplateResponse(
        request,
        template,
        {**words_of(language), **values},
        status_code=status_code,
    )
    if request.query_params.get("lang") in i18n.LANGUAGES:
        response.set_cookie(
            LANGUAGE_COOKIE,
            language,
            httponly=True,
            samesite="strict",
            secure=is_secure(request),
            path="/console",
        )
    return response


def _set_session_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        auth.SESSION_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=is_secure(request),
        path="/console",
    )


def redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def check_csrf(expected: str | None, submitted: str | None, *, language: str) -> None:
    if not expected or not submitted or not hmac.compare_digest(expected, submitted):
        raise CsrfRejected(language)


def _session_of(work: Work, request: Request, runtime: Runtime) -> ConsoleSession | None:
    """The live session of the request's cookie, touched (see ``auth.find_session``)."""
    return auth.find_session(
        work.session,
        token=request.cookies.get(auth.SESSION_COOKIE),
        settings=runtime.settings,
        now=SIGN_IN_CLOCK.now(work.session),
    )


@contextmanager
def signed_in(request: Request, *, page: str) -> Iterator[Page]:
    """The signed-in person for ``page`` (redirect to sign-in, or 403 for the wrong role)."""
    runtime = runtime_of(request)
    language = language_of(request)
    forbidden = False
    with runtime.work() as work:
        row = _session_of(work, request, runtime)
        account = auth.account_of(work.session, row.account_id) if row is not None else None
        if row is not None and row.stage == "active" and account and not account.disabled_at:
            identity = auth.identity_of(work.session, account)
            if identity.role in PAGE_ROLES[page]:
                yield Page(
                    request=request,
                    runtime=runtime,
                    work=work,
                    identity=identity,
                    session_row=row,
                    language=language,
                )
                return
            forbidden = True
    # Raised after the commit, so that an expired session is recorded as ended.
    if forbidden:
        raise PageForbidden(language)
    raise SignInRequired()


def error_page(request: Request, *, status_code: int, message: str) -> HTMLResponse:
    """A refusal or a missing page as a console page: the menu of whoever is signed in (links
    only to pages their role opens) and a way back to their own start page."""
    return _page_for_whoever(request, "message.html", status_code=status_code, message=message)


def _page_for_whoever(
    request: Request, template: str, *, status_code: int, **values: Any
) -> HTMLResponse:
    runtime = runtime_of(request)
    language = language_of(request)
    identity: auth.Identity | None = None
    csrf_token = ""
    with runtime.work() as work:
        row = _session_of(work, request, runtime)
        account = auth.account_of(work.session, row.account_id) if row is not None else None
        if row is not None and row.stage == "active" and account and not account.disabled_at:
            identity = auth.identity_of(work.session, account)
            csrf_token = row.csrf_token
    return render(
        request,
        template,
        status_code=status_code,
        language=language,
        identity=identity,
        csrf_token=csrf_token,
        person=lambda operator_id: operator_id or "",
        **values,
    )


# Fields a refused form carries back unseen, and fields never shown again.
HIDDEN_FORM_FIELDS = ("csrf_token", "form_token", "based_on")
SECRET_FORM_FIELDS = ("password", "code")
LONG_FIELD_CHARS = 80
LONG_FORM_FIELDS = ("note", "message", "content", "description")


def refused_form_page(
    request: Request, *, field: str | None, fields: list[tuple[str, str]]
) -> HTMLResponse:
    """A console form the request guard refused (a control character, a bidirectional
    override…): a 422 console page with the form as it was typed, the refused field marked and
    the reason next to it in the operator's language, ready to be sent again. The characters the
    rules forbid are taken out of what is shown (they cannot be sent back), and the page says so."""
    language = language_of(request)
    shown = []
    for name, value in fields:
        kept = "".join(character for character in value if not breaks_text_rule(character))
        shown.append(
            {
                "name": name,
                "value": "" if name in SECRET_FORM_FIELDS else kept,
                "hidden": name in HIDDEN_FORM_FIELDS,
                "secret": name in SECRET_FORM_FIELDS,
                "long": "\n" in kept or len(kept) > LONG_FIELD_CHARS or name in LONG_FORM_FIELDS,
                "refused": name == field,
                "label": i18n.translate(f"field.{name}", language)
                if i18n.has_entry(f"field.{name}", language)
                else name,
            }
        )
    action = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return _page_for_whoever(
        request,
        "form_refused.html",
        status_code=422,
        action=action,
        fields=shown,
        reason=i18n.translate("form_refused_field", language),
        message=i18n.translate("form_refused", language),
    )


def home_of(identity: auth.Identity | None) -> str:
    if identity is None:
        return "/console/login"
    return "/console/merchant" if identity.kind == "merchant" else "/console/dashboard"


templates.env.globals["home_of"] = home_of


FORM_TOKEN_FIELD = "form_token"


def once(
    page: Page, *, form_token: str, fields: dict[str, str], work: Callable[[], str]
) -> tuple[str, bool]:
    """Run a form's ``work`` once per form token (each rendering of a form carries a fresh one):
    a second post of the same form changes nothing and is told so. Returns where to go next and
    whether this post was a repeat. The record is kept in the transaction of the work it guards
    (the API's idempotency records), so a refused form leaves no record and can be sent again.
    A post without a token (an older page) is simply run."""
    key = form_token or None
    principal_id = f"console:{page.session_row.account_id}"
    request_fingerprint = fingerprint("POST", page.request.url.path, fields)
    if key is not None:
        stored = stored_response(
            page.work.session,
            principal_id=principal_id,
            key=key,
            request_fingerprint=request_fingerprint,
        )
        if stored is not None:
            return str(stored[1]["location"]), True
    # A twin post racing this one past the check makes run_idempotent raise once it has run:
    # the page's transaction is rolled back, so the form's work is still done only once.
    _status, body = run_idempotent(
        page.work.session,
        principal_id=principal_id,
        key=key,
        request_fingerprint=request_fingerprint,
        now=page.work.now,
        handler=lambda: (303, {"location": work()}),
    )
    return str(body["location"]), False


def run_form(
    page: Page,
    *,
    form_token: str,
    fields: dict[str, str],
    work: Callable[[], str],
    on_refusal: Callable[[UsefirstError], Response],
) -> Response:
    """A state-changing form's ``work`` in a savepoint, once per form token (``once``): done, a
    redirect to where ``work`` says (a repeat is told so); refused by the flow, the savepoint is
    rolled back, so nothing is left behind, and ``on_refusal`` shows why. A missing record stays
    the console's 404 page."""
    savepoint = page.work.session.begin_nested()
    try:
        location, replayed = once(page, form_token=form_token, fields=fields, work=work)
    except UsefirstError as refused:
        savepoint.rollback()
        if refused.status_code == 404:
            raise
        return on_refusal(refused)
    savepoint.commit()
    return redirect(repeated(location) if replayed else location)


class ShowAgain(Protocol):
    """A page holding a form, drawn again after a failed post of it."""

    def __call__(
        self, *, error: str, error_field: str | None, status_code: int, typed: dict[str, str]
    ) -> HTMLResponse: ...


@dataclass(frozen=True)
class FormPage:
    """A page with a form, and what a failed post of the form shows: the same page again, the
    error above the form, the field it is about marked, the values the operator typed kept,
    with a 4xx status (422 for input refused before any flow runs, the flow's own status for
    its refusal)."""

    page: Page
    show: ShowAgain
    typed: dict[str, str]

    def invalid(self, message_id: str, *, field: str | None) -> HTMLResponse:
        """The input refused before the flow is called: the catalog's ``message_id``, 422."""
        return self.show(
            error=i18n.translate(message_id, self.page.language),
            error_field=field,
            status_code=422,
            typed=self.typed,
        )

    def run(self, *, form_token: str, work: Callable[[], str], field: str | None) -> Response:
        """The form's ``work`` through ``run_form`` (the typed values are its fields); refused,
        the page again with the flow's reason, about the field the flow names or ``field``."""
        return run_form(
            self.page,
            form_token=form_token,
            fields=self.typed,
            work=work,
            on_refusal=lambda refused: self.show(
                error=refusal_text(self.page, refused),
                error_field=refused.field or field,
                status_code=refused.status_code,
                typed=self.typed,
            ),
        )


def refusal_text(page: Page, refused: UsefirstError) -> str:
    """A flow's refusal in the operator's language: in English the flow's own sentence; in
    Chinese a field refused by the flow says what the field must be (with the settings' own
    bounds), any other refusal the catalog's sentence for its code."""
    msgid = f"field_refused.{refused.field}"
    if (
        page.language != "en"
        and isinstance(refused, ValidationFailed)
        and i18n.has_entry(msgid, page.language)
    ):
        settings = page.runtime.settings
        return i18n.translate(
            msgid,
            page.language,
            plan_max=str(settings.hardship_plan_max_months),
            extension_max=str(settings.extension_max_days),
        )
    return i18n.refusal(refused.code, refused.message, page.language)


def repeated(location: str) -> str:
    """Where a repeated post goes: the same page, saying that nothing was done again."""
    path = location.split("?", 1)[0]
    return f"{path}?repeated=1"


# ---- sign-in ----


@router.get("", response_class=HTMLResponse)
@router.get("/", response_class=HTMLResponse)
def console_home(request: Request) -> RedirectResponse:
    """Each person's own start page: the portal for merchants' staff, the dashboard for
    operators (sign-in first, if needed)."""
    runtime = runtime_of(request)
    with runtime.work() as work:
        row = _session_of(work, request, runtime)
        account = auth.account_of(work.session, row.account_id) if row is not None else None
        if row is None or row.stage != "active" or account is None:
            return redirect("/console/login")
        start = "/console/merchant" if account.kind == "merchant" else "/console/dashboard"
        return redirect(start)


def _login_page(
    request: Request, *, error: str | None = None, status_code: int = 200, email: str = ""
) -> HTMLResponse:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = render(
        request,
        "login.html",
        status_code=status_code,
        language=language_of(request),
        csrf_token=token,
        error=error,
        email=email,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=is_secure(request),
        path="/console",
    )
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> HTMLResponse:
    return _login_page(request)


def _failure_text(failure: auth.SignInFailed, language: str) -> str:
    if failure.reason == "locked" and failure.locked_until is not None:
        return i18n.translate(
            "locked", language, until=f"{failure.locked_until:%Y-%m-%d %H:%M} UTC"
        )
    if failure.reason == "throttled":
        return i18n.translate("throttled", language, seconds=str(failure.retry_after_seconds or 1))
    return i18n.translate(failure.reason, language)


def _failure_page(
    request: Request, failure: auth.SignInFailed, *, language: str, email: str = ""
) -> HTMLResponse:
    """The sign-in page again with the failure: 401 (a lockout says until when, and carries
    Retry-After), or 429 with Retry-After when the address is throttled whatever the email."""
    retry_after = failure.retry_after_seconds
    response = _login_page(
        request,
        error=_failure_text(failure, language),
        status_code=429 if failure.reason == "throttled" else 401,
        email=email,
    )
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def sign_in_guard(request: Request, runtime: Runtime) -> auth.SignInGuard:
    address = request.client.host if request.client is not None else "unknown"
    return auth.SignInGuard(throttles=runtime.auth_throttles, client_address=address)


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=auth.MAX_PASSWORD_LENGTH)],
    csrf_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    language = language_of(request)
    check_csrf(request.cookies.get(LOGIN_CSRF_COOKIE), csrf_token, language=language)
    runtime = runtime_of(request)
    failure: auth.SignInFailed | None = None
    # A failure is counted in the transaction that reports it, so it is caught inside it.
    with runtime.work() as work:
        try:
            started = auth.check_password(
                work.session,
                email=email,
                password=password,
                settings=runtime.settings,
                now=SIGN_IN_CLOCK.now(work.session),
                guard=sign_in_guard(request, runtime),
            )
        except auth.SignInFailed as caught:
            failure = caught
        else:
            account = auth.account_of(work.session, started.session.account_id)
            assert account is not None
            if auth.needs_totp_enrolment(account):
                auth.start_totp_enrolment(work.session, account=account, cipher=runtime.cipher)
    if failure is not None:
        return _failure_page(request, failure, language=language, email=email)
    response = redirect("/console/second-factor")
    _set_session_cookie(request, response, started.token)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/console")
    return response


def _pending(work: Work, request: Request, runtime: Runtime) -> ConsoleSession | None:
    row = _session_of(work, request, runtime)
    return row if row is not None and row.stage == "second_factor" else None


def _second_factor_page(
    request: Request,
    *,
    work: Work,
    runtime: Runtime,
    pending: ConsoleSession,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    account = auth.account_of(work.session, pending.account_id)
    assert account is not None and account.totp_secret_encrypted is not None
    enrolment: dict[str, str] | None = None
    if auth.needs_totp_enrolment(account):
        secret = runtime.cipher.decrypt(account.totp_secret_encrypted, field="totp_secret")
        uri = auth.provisioning_uri(secret, email=account.email)
        enrolment = {
            "secret": secret,
            "qr_data_uri": segno.make(uri, error="m").svg_data_uri(scale=5),
        }
    return render(
        request,
        "second_factor.html",
        status_code=status_code,
        language=language_of(request),
        csrf_token=pending.csrf_token,
        enrolment=enrolment,
        error=error,
    )


@router.get("/second-factor", response_class=HTMLResponse)
def second_factor_form(request: Request) -> Response:
    runtime = runtime_of(request)
    with runtime.work() as work:
        pending = _pending(work, request, runtime)
        if pending is None:
            return redirect("/console/login")
        return _second_factor_page(request, work=work, runtime=runtime, pending=pending)


@router.post("/second-factor", response_class=HTMLResponse)
def second_factor(
    request: Request,
    code: Annotated[str, Form(max_length=20)],
    csrf_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    runtime = runtime_of(request)
    language = language_of(request)
    with runtime.work() as work:
        pending = _pending(work, request, runtime)
        if pending is None:
            return redirect("/console/login")
        check_csrf(pending.csrf_token, csrf_token, language=language)
        try:
            auth.check_totp(
                work.session,
                pending=pending,
                code=code,
                cipher=runtime.cipher,
                settings=runtime.settings,
                now=SIGN_IN_CLOCK.now(work.session),
                guard=sign_in_guard(request, runtime),
            )
        except auth.SignInFailed as failure:
            if failure.reason in ("locked", "expired", "throttled"):
                return _failure_page(request, failure, language=language)
            return _second_factor_page(
                request,
                work=work,
                runtime=runtime,
                pending=pending,
                error=_failure_text(failure, language),
                status_code=401,
            )
        account = auth.account_of(work.session, pending.account_id)
        merchant = account is not None and account.kind == "merchant"
    return redirect("/console/merchant" if merchant else "/console/dashboard")


@router.post("/logout")
def logout(request: Request, csrf_token: Annotated[str, Form(max_length=100)] = "") -> Response:
    runtime = runtime_of(request)
    token = request.cookies.get(auth.SESSION_COOKIE)
    with runtime.work() as work:
        row = _session_of(work, request, runtime)
        if row is not None:
            check_csrf(row.csrf_token, csrf_token, language=language_of(request))
            auth.end_session(work.session, token=token, now=SIGN_IN_CLOCK.now(work.session))
    response = redirect("/console/login")
    response.delete_cookie(auth.SESSION_COOKIE, path="/console")
    return response


# ---- dashboard ----


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard(request: Request) -> Response:
    with signed_in(request, page="dashboard") as page:
        repository = DashboardRepository(page.work.session)
        owed = repository.owed_by_status()
        decisions = repository.decisions_since(page.work.now - timedelta(days=30))
        report = collections_service.portfolio_report(page.work.session, as_of=page.work.today)
        language = page.language
        decision_chart = charts.bar_chart(
            [
                (i18n.translate(outcome, language), decisions.get(outcome, 0), colour)
                for outcome, colour in (
                    ("approved", "#2e7d32"),
                    ("review", "#f9a825"),
                    ("step_up", "#1565c0"),
                    ("declined", "#b71c1c"),
                )
            ],
            title=i18n.translate("decisions_30d", language),
        )
        bucket_chart = charts.bar_chart(
            [
                (bucket, amount // 100, charts.BUCKET_COLOURS[bucket])
                for bucket, amount in report.bucket_amounts_minor.items()
            ],
            title=i18n.translate("delinquency_now", language),
            format_value="¥{:,}",
        )
        history_chart = charts.stacked_history(
            [(f"{end:%Y-%m}", counts) for end, counts in sorted(report.history.items())],
            title=i18n.translate("delinquency_by_bucket", language),
        )
        support = SupportCounts(page.work.session)
        role = page.identity.role
        return page.render(
            "dashboard.html",
            # The shopper's options: requests awaiting an answer, and the open reconciliation
            # breaks (the menu has no room for the admin's page: it is reached from here).
            hardship_waiting=support.unanswered_hardships()
            if role in PAGE_ROLES["hardship"]
            else None,
            open_breaks=support.open_breaks() if role in PAGE_ROLES["reconciliation"] else None,
            finds_orders=role in PAGE_ROLES["orders"],
            outstanding_minor=owed.get("pending", 0) + owed.get("overdue", 0),
            overdue_minor=owed.get("overdue", 0),
            overdue_orders=repository.overdue_order_count(),
            open_legal_cases=repository.open_legal_cases(),
            open_risk_cases=repository.open_risk_cases(),
            complaints=repository.unanswered_complaints(page.work.now),
            decisions_total=sum(decisions.values()),
            charts=[decision_chart, bucket_chart, history_chart],
            buckets=list(charts.BUCKET_COLOURS.items()),
        )
