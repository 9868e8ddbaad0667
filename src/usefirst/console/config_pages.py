"""Editing the risk rules and the dunning ladder in the console.

Three steps, all working without JavaScript: the editor (the document in force, as text to edit
or a file to upload), a check (a bad document comes back with the line and reason of every
problem and nothing is saved; a good one shows the changed lines and a backtest on recorded
history), and the save, which checks again and stores a new version (refused if someone else
saved meanwhile). Risk analysts edit the rules; compliance edits the ladder, since it decides
how and how often shoppers are contacted; admins both.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from usefirst.collections import ladder_replay
from usefirst.collections import service as collections_service
from usefirst.collections.ladder import LADDER_CONFIG_KIND, parse_ladder
from usefirst.console import i18n
from usefirst.console.web import Page, check_csrf, once, repeated, signed_in
from usefirst.flows import config_publishing
from usefirst.identity import service as identity_service
from usefirst.kit import config_versions
from usefirst.kit.errors import NotFound, UsefirstError
from usefirst.risk import decision as risk_decision
from usefirst.risk.rules import RULES_CONFIG_KIND, parse_rule_set

router = APIRouter(prefix="/console", include_in_schema=False)

MAX_UPLOAD_BYTES = config_versions.MAX_CONTENT_CHARS
HISTORY_LENGTH = 20
DIFF_CONTEXT_LINES = 2
# The check replays this much decision history (the CLI's backtest replays all of it).
RULES_BACKTEST_DAYS = 90


@dataclass(frozen=True)
class EditorKind:
    slug: str  # in the URL
    kind: str  # in config_versions
    page: str  # in web.PAGE_ROLES
    title_key: str


EDITORS = {
    "rules": EditorKind("rules", RULES_CONFIG_KIND, "config_rules", "cfg_rules"),
    "ladder": EditorKind("ladder", LADDER_CONFIG_KIND, "config_ladder", "cfg_ladder"),
}


def _editor(slug: str) -> EditorKind:
    editor = EDITORS.get(slug)
    if editor is None:
        raise NotFound("There is no such configuration.")
    return editor


def _editor_page(
    page: Page,
    editor: EditorKind,
    *,
    text: str | None = None,
    problems: list[tuple[int | None, str]] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    session = page.work.session
    current = config_publishing.in_force(session, kind=editor.kind, settings=page.runtime.settings)
    versions = config_versions.history(session, kind=editor.kind, limit=HISTORY_LENGTH)
    return page.render(
        "config_editor.html",
        status_code=status_code,
        editor=editor,
        current=current,
        text=current.content if text is None else text,
        problems=problems or [],
        error=error,
        versions=versions,
        authors=identity_service.operator_emails(
            session, operator_ids={version.created_by for version in versions}
        ),
    )


def _diff(old: str, new: str) -> list[tuple[str, str]]:
    """(css class, line) of a unified diff, for the preview."""
    lines = difflib.unified_diff(
        old.splitlines(), new.splitlines(), "in force", "proposed", n=DIFF_CONTEXT_LINES
    )
    shown = []
    for line in lines:
        if line.startswith(("---", "+++")):
            continue
        kind = {"+": "added", "-": "removed", "@": "hunk"}.get(line[:1], "context")
        shown.append((kind, line))
    return shown


def _rules_backtest(page: Page, text: str) -> dict[str, Any]:
    session = page.work.session
    proposed = parse_rule_set(text, source="proposed")
    current = risk_decision.rule_set_of(session, page.runtime.settings)
    report = risk_decision.backtest(
        session,
        rule_set=proposed,
        baseline=current,
        since=page.work.now - timedelta(days=RULES_BACKTEST_DAYS),
    )
    proposed_ids = [rule.id for rule in proposed.rules]
    # The proposed rules in their order, then the ones the change removes.
    rule_ids = proposed_ids + [rule.id for rule in current.rules if rule.id not in proposed_ids]
    return {
        "report": report,
        "transitions": sorted(report.transitions.items()),
        "backtest_days": RULES_BACKTEST_DAYS,
        "rule_hits": [
            (rule_id, report.baseline_hits.get(rule_id, 0), report.rule_hits.get(rule_id, 0))
            for rule_id in rule_ids
        ],
    }


def _ladder_backtest(page: Page, text: str) -> dict[str, Any]:
    session = page.work.session
    comparison = ladder_replay.compare_ladders(
        session,
        current=collections_service.ladder_of(session, page.runtime.settings),
        proposed=parse_ladder(text, source="proposed"),
        today=page.work.today,
    )
    return {"comparison": comparison}


def _submitted_text(
    page: Page, content: str, upload: UploadFile | None
) -> tuple[str | None, str | None]:
    """(text, error): an uploaded file wins over the text area. Read synchronously: the page is a
    plain ``def`` so that its database work runs in the thread pool, not on the event loop."""
    if upload is None or not upload.filename:
        return config_publishing.normalise(content), None
    data = upload.file.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        return None, i18n.translate("cfg_too_large", page.language, limit=f"{MAX_UPLOAD_BYTES:,}")
    try:
        return config_publishing.normalise(data.decode("utf-8-sig")), None
    except UnicodeDecodeError:
        return None, i18n.translate("cfg_not_utf8", page.language)


@router.get("/config/{slug}", response_class=HTMLResponse)
def editor_form(request: Request, slug: str) -> Response:
    editor = _editor(slug)
    with signed_in(request, page=editor.page) as page:
        return _editor_page(page, editor)


@router.post("/config/{slug}/check", response_class=HTMLResponse)
def check(
    request: Request,
    slug: str,
    based_on: Annotated[int, Form(ge=0)],
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    content: Annotated[str, Form(max_length=config_versions.MAX_CONTENT_CHARS)] = "",
    upload: Annotated[UploadFile | None, File()] = None,
) -> Response:
    editor = _editor(slug)
    with signed_in(request, page=editor.page) as page:
        check_csrf(page.session_row.csrf_token, csrf_token, language=page.language)
        text, error = _submitted_text(page, content, upload)
        if text is None:
            return _editor_page(page, editor, error=error, status_code=422)
        try:
            label = config_publishing.check(
                page.work.session, kind=editor.kind, text=text, settings=page.runtime.settings
            )
        except config_publishing.ConfigInvalid as invalid:
            return _editor_page(page, editor, text=text, problems=invalid.problems, status_code=422)
        current = config_publishing.in_force(
            page.work.session, kind=editor.kind, settings=page.runtime.settings
        )
        backtest = (
            _rules_backtest(page, text)
            if editor.kind == RULES_CONFIG_KIND
            else _ladder_backtest(page, text)
        )
        return page.render(
            "config_preview.html",
            editor=editor,
            text=text,
            label=label,
            based_on=based_on,
            stale=based_on != current.number,
            diff=_diff(current.content, text),
            **backtest,
        )


@router.post("/config/{slug}/save", response_class=HTMLResponse)
def save(
    request: Request,
    slug: str,
    based_on: Annotated[int, Form(ge=0)],
    content: Annotated[str, Form(max_length=config_versions.MAX_CONTENT_CHARS)],
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    note: Annotated[str, Form(max_length=config_versions.MAX_NOTE_CHARS)] = "",
    form_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    editor = _editor(slug)
    with signed_in(request, page=editor.page) as page:
        check_csrf(page.session_row.csrf_token, csrf_token, language=page.language)
        created_by = page.identity.operator_id
        assert created_by is not None  # only operators reach these pages
        # Checked and saved in a savepoint: a refusal leaves nothing behind. The form's one-time
        # token makes a second post of the same preview (a double click, a reload) a no-op.
        savepoint = page.work.session.begin_nested()

        def publish() -> str:
            version = config_publishing.publish(
                page.work.session,
                kind=editor.kind,
                text=content,
                based_on=based_on,
                note=note,
                created_by=created_by,
                settings=page.runtime.settings,
                now=page.work.now,
            )
            return f"/console/config/{slug}?saved={version.number}"

        try:
            location, replayed = once(
                page,
                form_token=form_token,
                fields={"content": content, "based_on": str(based_on), "note": note},
                work=publish,
            )
        except config_publishing.ConfigInvalid as invalid:
            savepoint.rollback()
            return _editor_page(
                page, editor, text=content, problems=invalid.problems, status_code=422
            )
        except UsefirstError as refused:
            savepoint.rollback()
            return _editor_page(
                page,
                editor,
                text=content,
                error=i18n.refusal(refused.code, refused.message, page.language),
                status_code=409,
            )
        savepoint.commit()
    return RedirectResponse(repeated(location) if replayed else location, status_code=303)
