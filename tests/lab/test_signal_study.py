"""Lab signals computed point in time from what the engine records, and the study that trains on
training worlds only and reports the held-out ones."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from usefirst.cli.main import app
from usefirst.lab.signal_study import (
    COLUMNS,
    ONLINE_SIGNALS,
    SIGNAL_GROUPS,
    SIGNAL_NAMES,
    RecordedOrder,
    _threshold,
    address_cluster_key,
    ip_block,
    point_in_time_signals,
    psi,
    read_rows,
    study,
    write_rows,
)
from usefirst.risk.features import FEATURE_NAMES

T0 = datetime(2026, 11, 11, 10, tzinfo=UTC)


def _recorded(
    order_id: str,
    shopper: str,
    merchant: str,
    minutes: float,
    *,
    amount: int = 10_000,
    device: str | None = None,
    block: str | None = None,
    address: str | None = None,
    held: bool = False,
    account_days: float = 100,
) -> RecordedOrder:
    created = T0 + timedelta(minutes=minutes)
    return RecordedOrder(
        order_id, shopper, merchant, amount, created, device, block, address, held,
        created - timedelta(days=account_days),
    )  # fmt: skip


def test_address_clusters_and_ip_blocks() -> None:
    spellings = [
        "广东省广州市天河区星湖街12号3幢1201室",
        "广东省广州市天河区星湖街12号3幢1201",
        "广东省广州市天河区星湖街１２号３幢１２０１室",
        "广东省广州市天河区星湖街12號3 幢1201室",
    ]
    assert {address_cluster_key(spelling) for spelling in spellings} == {
        "广东省广州市天河区星湖街12号3栋1201"
    }
    assert address_cluster_key("广东省广州市天河区星湖街12号3幢1202室") != address_cluster_key(
        spellings[0]
    )
    assert ip_block("223.104.7.9") == "223.104.7.0/24"
    assert ip_block("2001:db8:1:2::5") == "2001:db8:1::/48"
    assert ip_block("not an ip") is None and ip_block(None) is None


def test_signals_read_only_earlier_orders() -> None:
    orders = [
        # a week of ordinary trade at m1 and m2, one order a day
        *[_recorded(f"o{day}", f"h{day}", "m1", -day * 1440 - 60) for day in range(7, 0, -1)],
        _recorded("p1", "h9", "m2", -1440 * 2, amount=4_000),
        # a burst at m1: mules on one device, two address spellings clustered, one IP block
        _recorded("a", "s1", "m1", 0, device="d1", block="b1", address="x1", account_days=1),
        _recorded("b", "s2", "m1", 20, device="d1", block="b1", address="x1", held=True,
                  account_days=1),
        _recorded("c", "s3", "m1", 40, amount=20_000, device="d2", block="b1", address="x1",
                  account_days=1),
        _recorded("d", "s3", "m1", 40, amount=20_000, device="d2", block="b1", address="x1",
                  account_days=1),
    ]  # fmt: skip
    signals = point_in_time_signals(orders)
    assert set(signals) == {order.order_id for order in orders}
    assert all(set(values) == set(SIGNAL_NAMES) for values in signals.values())
    first, third, fourth = signals["a"], signals["c"], signals["d"]
    # the first mule order: nothing linked before it
    assert first["device_shoppers_30d"] == 0
    assert first["neighbourhood_size_30d"] == 0
    assert first["linked_orders_same_merchant_6h"] == 0
    assert first["linked_amount_same_merchant_6h"] == 10_000
    # m1's last 24 h: nothing (o1 is 25 h old); the 7 days before: o1..o7
    assert first["merchant_orders_1h"] == 0
    assert first["merchant_burst_24h"] == 0.0
    assert first["merchant_new_shopper_share_24h"] == 0
    # the third mule order sees the two before it
    assert third["device_shoppers_30d"] == 0  # d2 is new
    assert third["address_cluster_shoppers_30d"] == 2
    assert third["ip_block_shoppers_24h"] == 2
    assert third["neighbourhood_size_30d"] == 2
    assert third["neighbour_held_share_7d"] == 0.5
    assert third["neighbour_merchant_share_30d"] == 1.0
    assert third["linked_orders_same_merchant_6h"] == 2
    assert third["linked_amount_same_merchant_6h"] == 40_000
    assert third["merchant_orders_1h"] == 2
    assert third["merchant_new_shopper_share_24h"] == 1.0
    assert third["merchant_burst_24h"] == pytest.approx(2 / (7 / 7 + 1))
    # an order at the same instant is not "earlier": c and d do not see each other
    assert fourth == third
    # market pace: 2 platform orders in the last 24 h (a, b), 8 in the 7 days before
    assert third["market_day_ratio"] == pytest.approx(2 / (8 / 7 + 1))
    assert third["amount_vs_market_median_24h"] == 2.0


def test_psi_and_the_threshold_on_the_honest_budget() -> None:
    generator = np.random.default_rng(1)
    same = generator.normal(size=2000)
    assert psi(same, generator.normal(size=2000)) < 0.02
    assert psi(same, generator.normal(loc=1.0, size=2000)) > 0.25
    assert psi(np.zeros(10), np.ones(10)) == 0.0  # a constant signal has no bins to compare
    scores = np.array([0.9, 0.8, *np.linspace(0.0, 0.5, 400)])
    labels = np.array([1, 1, *[0] * 400])
    threshold, touched = _threshold(scores, labels)
    # 0.5 % of 400 honest orders: 2 may be touched, so the cut is just above the third highest
    assert touched == 2 / 400
    assert np.sum(scores[labels == 0] >= threshold) == 2


def _synthetic_rows(world: str, split: str, seed: int) -> list[dict[str, object]]:
    rng = random.Random(seed)
    rows = []
    for index in range(300):
        is_fraud = index % 10 == 0
        row: dict[str, object] = {
            "world": world, "split": split, "order_id": f"{world}-{index}",
            "is_fraud": int(is_fraud), "typology": "ring_cash_out" if is_fraud else "",
            "amount_minor": 80_000 if is_fraud else 10_000,
        }  # fmt: skip
        for name in FEATURE_NAMES:
            row[name] = rng.random()
        for name in SIGNAL_NAMES:
            row[name] = rng.random()
        # only a splitting signal separates fraud here
        row["linked_orders_same_merchant_6h"] = (2.0 if is_fraud else 0.0) + rng.random() * 0.5
        rows.append(row)
    return rows


def test_the_study_trains_on_training_worlds_and_ablates_each_group(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    write_rows(data / "t1.csv", _synthetic_rows("t1", "train", 1))
    write_rows(data / "t2.csv", _synthetic_rows("t2", "train", 2))
    write_rows(data / "h1.csv", _synthetic_rows("h1", "held_out", 3))
    rows = read_rows(data)
    assert len(rows) == 900 and set(rows[0]) == set(COLUMNS)
    result = study(rows)
    assert (result["train_rows"], result["held_out_rows"]) == (600, 300)
    variants = {variant["variant"]: variant for variant in result["variants"]}
    assert len(variants) == 2 + 2 * len(SIGNAL_GROUPS)
    full = variants["recorded + all new signals"]
    assert full["auc_worst"] == 1.0
    assert full["caught_money_worst"] == 1.0
    # the threshold touched at most 0.5 % of honest training orders; held out, about as few
    assert full["train_honest_touched"] <= 0.005
    assert full["honest_touched_worst"] <= 0.02
    assert variants["recorded features only"]["auc_worst"] < 0.8
    assert variants["all but splitting"]["auc_worst"] < 0.8
    assert variants["recorded + splitting only"]["auc_worst"] == 1.0
    assert list(full["per_world"]) == ["h1"]
    assert result["calibration_held_out"]["brier"] < 0.05
    assert set(result["drift_psi"]) == set(FEATURE_NAMES) | set(SIGNAL_NAMES)
    assert [signal["name"] for signal in result["online_signals"]] == list(SIGNAL_NAMES)
    assert all(signal.key and signal.window for signal in ONLINE_SIGNALS)

    printed = CliRunner().invoke(app, ["risk", "study-signals", str(data), "--json"])
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.stdout)["variants"][1]["auc_worst"] == 1.0
    (data / "h1.csv").unlink()
    refused = CliRunner().invoke(app, ["risk", "study-signals", str(data)])
    assert refused.exit_code == 1
    assert "a study needs rows of training and of held-out worlds" in refused.output
