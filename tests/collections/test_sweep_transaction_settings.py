"""The daily sweep's steps run with their own PostgreSQL settings (work_mem raised, JIT off) for
their transaction only: the next transaction on the same connection has the server's own."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.conftest import make_runtime
from usefirst.collections import service as collections_service
from usefirst.collections.repository import SWEEP_WORK_MEM

pytestmark = pytest.mark.postgresql

SHOW = text("SELECT current_setting('work_mem'), current_setting('jit')")
BACKEND = text("SELECT pg_backend_pid()")


def test_a_sweep_transaction_raises_work_mem_and_turns_jit_off_for_itself_only(
    postgres_url: str,
) -> None:
    runtime = make_runtime(postgres_url)
    try:
        with runtime.database.transaction() as session:
            backend = session.execute(BACKEND).scalar_one()
            server_defaults = tuple(session.execute(SHOW).one())
            collections_service.tune_sweep_transaction(session)
            assert tuple(session.execute(SHOW).one()) == (SWEEP_WORK_MEM, "off")
        with runtime.database.transaction() as session:
            assert session.execute(BACKEND).scalar_one() == backend  # the same connection
            assert tuple(session.execute(SHOW).one()) == server_defaults
        assert server_defaults[0] != SWEEP_WORK_MEM
    finally:
        runtime.database.dispose()
