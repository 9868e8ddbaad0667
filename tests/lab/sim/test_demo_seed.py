"""The demo database ``./dev run`` seeds (``usefirst simulate --demo`` with its parameters) has
work on every console page: held orders with merchant warnings, a ring case, disputes with
evidence, complaints, promises to pay and a charged-off order; and its clock is left at a
working hour, when collectors may call."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, text

from tests.cli.test_cli import environment, migrated, run

__all__ = ["environment"]

DEV_RUN_ARGUMENTS = ("--shoppers", "50", "--days", "45", "--seed", "7", "--demo")


def test_the_demo_fills_every_console_page(
    environment: Path, long_tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dev_script = (Path(__file__).resolve().parents[3] / "dev").read_text()
    assert f"usefirst simulate {' '.join(DEV_RUN_ARGUMENTS)}" in dev_script
    monkeypatch.setenv("USEFIRST_SANDBOX", "true")
    monkeypatch.setenv("USEFIRST_DISPUTE_EVIDENCE_DIR", str(long_tmp_path / "evidence"))
    migrated(environment)
    seeded = run("simulate", *DEV_RUN_ARGUMENTS)
    assert seeded.exit_code == 0, seeded.output

    engine = create_engine(f"sqlite:///{environment}")
    with engine.connect() as connection:

        def scalar(sql: str) -> int:
            return int(connection.execute(text(sql)).scalar() or 0)

        held = connection.execute(
            text(
                "SELECT o.id FROM orders o JOIN merchants m ON m.id = o.merchant_id"
                " WHERE o.status = 'review' AND m.name = '望京数码旗舰店'"
            )
        ).all()
        assert len(held) == 3
        warned = scalar(
            "SELECT count(DISTINCT order_id) FROM risk_actions WHERE action = 'merchant_warning'"
        )
        assert warned >= 3
        assert scalar("SELECT count(*) FROM risk_cases WHERE case_type = 'ring'") == 1
        assert scalar("SELECT count(*) FROM disputes") == 2
        assert scalar("SELECT count(DISTINCT dispute_id) FROM dispute_evidence") == 1
        assert scalar("SELECT count(*) FROM dispute_evidence") == 2
        assert scalar("SELECT count(*) FROM complaints") == 3
        assert scalar("SELECT count(*) FROM contact_attempts WHERE outcome = 'promise_to_pay'") >= 1
        assert scalar("SELECT count(*) FROM orders WHERE status = 'charged_off'") == 1
        now_at = connection.execute(text("SELECT now_at FROM sandbox_clock WHERE id = 1")).scalar()
    engine.dispose()
    local = (
        datetime.fromisoformat(str(now_at))
        .replace(tzinfo=UTC)
        .astimezone(ZoneInfo("Asia/Shanghai"))
    )
    assert 10 <= local.hour < 18
    assert len(list((long_tmp_path / "evidence").rglob("*"))) >= 2
