"""Shared set-up for the disputes tests: the collections sandbox engine (fixed start date, test
clock, platform/collector/admin keys) plus a support operator, a second merchant, an evidence
directory of its own and small helpers for the disputes API."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.collections.dunning_env import SHIPMENT, Env, open_env
from tests.factories import bearer, checkout_body, create_merchant
from usefirst.disputes.models import Dispute, DisputeAction, DisputeEvidence
from usefirst.identity.service import create_operator

# Smallest valid-looking files of each accepted type (the checks read the leading bytes).
PDF_BYTES = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(13)) + b"\x00" * 4
JPEG_BYTES = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01" + b"\x00" * 16 + b"\xff\xd9"
TEXT_BYTES = "快递单号 SF1234567890 已签收 / delivered to the locker at 14:02\n".encode()
JSON_BYTES = b'{"chat": [{"from": "shopper", "text": "got it, thanks"}]}'


@dataclass
class DisputeEnv:
    env: Env
    support: dict[str, str]
    support_id: str
    other_merchant: dict[str, Any]
    evidence_dir: Path

    @property
    def client(self) -> TestClient:
        return self.env.client

    @property
    def platform(self) -> dict[str, str]:
        return self.env.platform

    def merchant_headers(self) -> dict[str, str]:
        return bearer(self.env.merchant()["api_key"])

    def buy(self, shopper_id: str, amount_minor: int = 30_000) -> dict[str, Any]:
        return self.env.buy(shopper_id, amount_minor)

    def buy_shipped(self, shopper_id: str, amount_minor: int = 30_000) -> dict[str, Any]:
        merchant = self.env.merchant()
        response = self.client.post(
            "/v1/checkouts",
            headers=self.platform,
            json=checkout_body(shopper_id, merchant["id"], amount_minor),
        )
        assert response.status_code == 201, response.text
        order_id = response.json()["order"]["id"]
        shipped = self.client.post(
            f"/v1/orders/{order_id}/ship", headers=self.merchant_headers(), json=SHIPMENT
        )
        assert shipped.status_code == 200, shipped.text
        return dict(shipped.json())

    # disputes API

    def file(
        self,
        order_id: str,
        *,
        opened_by: str = "shopper",
        reason: str = "not_as_described",
        headers: dict[str, str] | None = None,
        description: str = "The headphones arrived with a cracked left cup.",
    ) -> Any:
        if headers is None:
            headers = self.platform if opened_by == "shopper" else self.merchant_headers()
        return self.client.post(
            "/v1/disputes",
            headers=headers,
            json={
                "order_id": order_id,
                "opened_by": opened_by,
                "reason": reason,
                "description": description,
            },
        )

    def open(self, order_id: str, **kwargs: Any) -> dict[str, Any]:
        response = self.file(order_id, **kwargs)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def upload(
        self,
        dispute_id: str,
        content: bytes,
        *,
        headers: dict[str, str],
        filename: str = "evidence.bin",
        content_type: str = "application/octet-stream",
    ) -> Any:
        return self.client.post(
            f"/v1/disputes/{dispute_id}/evidence",
            headers=headers,
            files={"file": (filename, content, content_type)},
        )

    def get(self, dispute_id: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
        response = self.client.get(f"/v1/disputes/{dispute_id}", headers=headers or self.platform)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def resolve(
        self,
        dispute_id: str,
        outcome: str,
        *,
        shopper_refund_minor: int | None = None,
        note: str = "Decided on the evidence.",
        headers: dict[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        body: dict[str, Any] = {"outcome": outcome, "note": note}
        if shopper_refund_minor is not None:
            body["shopper_refund_minor"] = shopper_refund_minor
        request_headers = dict(headers or self.support)
        if idempotency_key is not None:
            request_headers["Idempotency-Key"] = idempotency_key
        return self.client.post(
            f"/v1/disputes/{dispute_id}/resolve", headers=request_headers, json=body
        )

    # what is stored

    def stored_files(self) -> list[Path]:
        if not self.evidence_dir.exists():
            return []
        return sorted(path for path in self.evidence_dir.rglob("*") if path.is_file())

    def row_counts(self) -> tuple[int, int, int]:
        """(disputes, evidence rows, history rows)."""
        with self.env.runtime.work(read_only=True) as work:
            return (
                work.session.scalar(select(func.count()).select_from(Dispute)) or 0,
                work.session.scalar(select(func.count()).select_from(DisputeEvidence)) or 0,
                work.session.scalar(select(func.count()).select_from(DisputeAction)) or 0,
            )

    def dispute_events(self) -> list[dict[str, Any]]:
        return self.env.events("dispute.updated")


def sha256_of(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


@contextmanager
def open_dispute_env(database_url: str, tmp_path: Path, **settings: Any) -> Iterator[DisputeEnv]:
    evidence_dir = tmp_path / "evidence"
    with open_env(database_url, tmp_path, dispute_evidence_dir=evidence_dir, **settings) as env:
        with env.runtime.work() as work:
            support, support_token = create_operator(
                work.session, email="support@example.com", role="support", now=work.now
            )
        env.merchant()
        other = create_merchant(env.client, env.platform, name="Other Shop")
        yield DisputeEnv(
            env=env,
            support=bearer(support_token),
            support_id=support.id,
            other_merchant=other,
            evidence_dir=evidence_dir,
        )
