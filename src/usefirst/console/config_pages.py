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
from usefirst.console.web import Page, check_csrf, signed_in
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

i18n.register(
    {
        "cfg_rules": {"zh": "风控规则", "en": "Risk rules"},
        "cfg_ladder": {"zh": "催收阶梯", "en": "Dunning ladder"},
        "cfg_in_force": {"zh": "当前生效", "en": "In force"},
        "cfg_from_file": {
            "zh": "文件 {path}（尚未在控制台保存过版本）",
            "en": "the file {path} (no version saved in the console yet)",
        },
        "cfg_version_by": {
            "zh": "版本 {number}，{who} 保存于 {when}",
            "en": "version {number}, saved by {who} at {when}",
        },
        "cfg_edit_hint": {
            "zh": "在下方修改，或上传一个文件（上传的文件优先）。"
            "检查通过后会显示回测结果，确认后才会保存。",
            "en": "Edit below or upload a file (an uploaded file wins). A document that passes the "
            "check shows a backtest first; nothing is saved until you confirm.",
        },
        "cfg_text": {"zh": "内容（TOML）", "en": "Document (TOML)"},
        "cfg_upload": {"zh": "或上传文件", "en": "Or upload a file"},
        "cfg_check": {"zh": "检查并回测", "en": "Check and backtest"},
        "cfg_rejected": {
            "zh": "文件有误，未做任何更改：",
            "en": "The document was rejected; nothing was changed:",
        },
        "cfg_line": {"zh": "第 {line} 行", "en": "line {line}"},
        "cfg_whole_file": {"zh": "整个文件", "en": "whole document"},
        "cfg_not_utf8": {
            "zh": "文件不是 UTF-8 文本。",
            "en": "The file is not UTF-8 text.",
        },
        "cfg_too_large": {
            "zh": "文件过大（上限 {limit} 字节）。",
            "en": "The file is too large (limit {limit} bytes).",
        },
        "cfg_preview": {"zh": "保存前确认", "en": "Review before saving"},
        "cfg_valid": {
            "zh": "检查通过：{label}。",
            "en": "The document is valid: {label}.",
        },
        "cfg_changes": {"zh": "改动", "en": "Changes"},
        "cfg_no_changes": {
            "zh": "与当前生效的版本相同。",
            "en": "Identical to the version in force.",
        },
        "cfg_backtest": {"zh": "回测", "en": "Backtest"},
        "cfg_rules_backtest_intro": {
            "zh": "用新规则重放近 {days} 天存储的 {count} 个审批决策（特征与模型分按当时记录）：",
            "en": "The {count} checkout decisions stored in the last {days} days, replayed "
            "through the new rules (features and model score as recorded then):",
        },
        "cfg_changed_outcomes": {
            "zh": "结果会改变的订单：{changed} / {count}",
            "en": "Orders whose outcome would change: {changed} of {count}",
        },
        "cfg_stored_outcome": {"zh": "原结果", "en": "Stored outcome"},
        "cfg_would_be": {"zh": "新结果", "en": "Would be"},
        "cfg_orders": {"zh": "订单数", "en": "Orders"},
        "cfg_examples": {"zh": "示例", "en": "Examples"},
        "cfg_rule": {"zh": "规则", "en": "Rule"},
        "cfg_hits_now": {"zh": "当前命中", "en": "Hits now"},
        "cfg_hits_new": {"zh": "新规则命中", "en": "Hits with the new rules"},
        "cfg_ladder_backtest_intro": {
            "zh": "按 {start} 至 {end} 的实际还款记录重放两个阶梯"
            "（未计入免打扰、每日上限与争议暂停，为上限值）：",
            "en": "Both ladders replayed on the instalments recorded from {start} to {end} "
            "(before quiet hours, daily caps and dispute pauses: an upper bound):",
        },
        "cfg_measure": {"zh": "项目", "en": "What"},
        "cfg_current": {"zh": "当前", "en": "Current"},
        "cfg_proposed": {"zh": "新版本", "en": "Proposed"},
        "cfg_measure_push": {"zh": "App 推送", "en": "App pushes"},
        "cfg_measure_sms": {"zh": "短信", "en": "SMS"},
        "cfg_measure_email": {"zh": "邮件", "en": "Emails"},
        "cfg_measure_call_queue": {
            "zh": "进入电话催收（分期笔数）",
            "en": "Into the call queue (instalments)",
        },
        "cfg_measure_bureau_report": {
            "zh": "报送征信（分期笔数）",
            "en": "Reported to the bureau (instalments)",
        },
        "cfg_measure_legal_referral": {
            "zh": "转法务（分期笔数）",
            "en": "Referred to legal (instalments)",
        },
        "cfg_measure_charge_off": {"zh": "核销（分期笔数）", "en": "Charged off (instalments)"},
        "cfg_steps": {"zh": "各步骤（新版本）", "en": "Steps (proposed)"},
        "cfg_day": {"zh": "天", "en": "Day"},
        "cfg_step": {"zh": "动作", "en": "Does"},
        "cfg_instalments": {"zh": "触达分期笔数", "en": "Instalments reached"},
        "cfg_note": {"zh": "修改说明", "en": "Why (note)"},
        "cfg_save": {"zh": "保存为新版本", "en": "Save as a new version"},
        "cfg_back": {"zh": "返回修改", "en": "Back to editing"},
        "cfg_stale": {
            "zh": "在你编辑期间已有人保存了新版本，保存将被拒绝；请返回查看最新版本。",
            "en": "Someone saved a newer version while you were editing: saving will be refused. "
            "Go back to see it.",
        },
        "cfg_saved": {
            "zh": "已保存为版本 {number}，即刻生效。",
            "en": "Saved as version {number}; it is in force now.",
        },
        "cfg_history": {"zh": "版本历史", "en": "Versions"},
        "cfg_number": {"zh": "版本", "en": "Version"},
        "cfg_label": {"zh": "摘要", "en": "Summary"},
        "cfg_saved_by": {"zh": "保存人", "en": "Saved by"},
        "cfg_saved_at": {"zh": "时间", "en": "When"},
    }
)


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
) -> Response:
    editor = _editor(slug)
    with signed_in(request, page=editor.page) as page:
        check_csrf(page.session_row.csrf_token, csrf_token, language=page.language)
        created_by = page.identity.operator_id
        assert created_by is not None  # only operators reach these pages
        # Checked and saved in a savepoint: a refusal leaves nothing behind.
        savepoint = page.work.session.begin_nested()
        try:
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
        except config_publishing.ConfigInvalid as invalid:
            savepoint.rollback()
            return _editor_page(
                page, editor, text=content, problems=invalid.problems, status_code=422
            )
        except UsefirstError as refused:
            savepoint.rollback()
            return _editor_page(page, editor, text=content, error=refused.message, status_code=409)
        savepoint.commit()
        number = version.number
    return RedirectResponse(f"/console/config/{slug}?saved={number}", status_code=303)
