"""The contact log and the bureau file list page like the other lists: ``limit`` (1–500, default
50) and ``starting_after`` (the last id of the previous page), with ``has_more``."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

from tests.collections.dunning_env import Env, open_env

DUE = date(2027, 3, 9)  # bought and delivered on the start day, 2027-03-02


def pages(env: Env, path: str, limit: int) -> list[list[dict[str, Any]]]:
    found: list[list[dict[str, Any]]] = []
    params: dict[str, Any] = {"limit": limit}
    while True:
        response = env.client.get(path, headers=env.collector, params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        found.append(body["data"])
        if not body["has_more"]:
            return found
        params["starting_after"] = body["data"][-1]["id"]


def test_the_contact_log_and_bureau_files_page_through_everything_once(
    database_url: str, tmp_path: Path
) -> None:
    with open_env(database_url, tmp_path) as env:
        shopper = env.enrol(email="page@example.com")
        env.buy(shopper["id"])
        env.buy(shopper["id"], amount_minor=20_000)
        env.advance_to_day(DUE + timedelta(days=3), 12)
        for period in ("2027-03", "2027-03", "2027-03"):
            env.bureau_file(period, "jsonl")
        everything = env.contacts(shopper["id"])
        # Two orders, each through day +3: push, push+sms, push+sms, sms, sms+email.
        assert len(everything) == 2 * 8
        path = f"/v1/shoppers/{shopper['id']}/contacts"
        contact_pages = pages(env, path, 3)
        assert [len(page) for page in contact_pages] == [3, 3, 3, 3, 3, 1]
        assert [row for page in contact_pages for row in page] == everything
        assert pages(env, path, 16) == [everything]

        files = env.bureau_files()
        assert len(files) == 3
        file_pages = pages(env, "/v1/bureau/files", 2)
        assert [row for page in file_pages for row in page] == files
        assert [len(page) for page in file_pages] == [2, 1]

        unknown = env.client.get(
            path, headers=env.collector, params={"starting_after": "cnt_unknown"}
        )
        assert unknown.status_code == 422, unknown.text
        assert unknown.json()["error"]["field"] == "starting_after"
        too_many = env.client.get(path, headers=env.collector, params={"limit": 501})
        assert too_many.status_code == 422
