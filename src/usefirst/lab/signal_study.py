"""Which checkout signals generalise across marketplaces: computed in the lab from what the engine
records, studied on the evaluation suite's worlds before the checkout serves them.

:func:`point_in_time_signals` computes, for every order, signals from the orders recorded *before*
it (what the checkout could have known): velocity and bursts per merchant, per device, per IP
block and per address cluster over sliding windows; the size of the order's shared
device/address/IP neighbourhood, the share of the neighbours' recent orders that were held or
declined, and how concentrated the neighbourhood is on this merchant; order splitting (linked
shoppers ordering at one merchant within hours); and the market's own pace (a sale day lifts
every honest order at once).

:func:`study` trains a gradient-boosted classifier on the suite's **training** worlds only, with
the engine's recorded features alone and with each group of new signals, picks the threshold on
the training worlds (the lowest one that touches at most 0.5 % of honest orders there, scored
out of world: each by a model fitted on the other training worlds),
and reports on the **held-out** worlds: AUC, cash-out money caught at checkout and honest orders
touched per world (worst and mean), calibration (Brier score and a reliability table) and drift
(PSI of each signal, training vs held-out). The ablation drops one group at a time.

The checkout does not serve these signals yet: ``ONLINE_SIGNALS`` is the specification (name,
window, key) it must provide from its per-key counters.
"""

from __future__ import annotations

import bisect
import csv
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from usefirst.identity.models import Shopper
from usefirst.lab.risk_evaluation import DecidedOrder
from usefirst.orders.models import Order
from usefirst.orders.repository import CHECKOUT_COLUMNS
from usefirst.risk import signals as served
from usefirst.risk.features import FEATURE_NAMES
from usefirst.risk.signals import address_cluster_key, ip_block
from usefirst.runtime import Runtime

HELD_STATUSES_AT_CHECKOUT = ("review", "declined", "step_up")


@dataclass(frozen=True)
class OnlineSignal:
    name: str
    group: str
    key: str  # what the checkout's counter is keyed by
    window: str
    meaning: str


ONLINE_SIGNALS: tuple[OnlineSignal, ...] = (
    OnlineSignal("merchant_orders_1h", "merchant_velocity", "merchant_id", "1 h",
                 "orders placed at the merchant in the last hour"),
    OnlineSignal("merchant_burst_24h", "merchant_velocity", "merchant_id", "24 h vs 7 d",
                 "orders at the merchant in 24 h over its daily mean of the 7 days before (+1)"),
    OnlineSignal("merchant_new_shopper_share_24h", "merchant_velocity", "merchant_id", "24 h",
                 "share of the merchant's orders in 24 h from accounts younger than 3 days"),
    OnlineSignal("device_shoppers_30d", "link_velocity", "device_id", "30 d",
                 "other shoppers who ordered from the device"),
    OnlineSignal("ip_block_shoppers_24h", "link_velocity", "IPv4 /24 (IPv6 /48) block", "24 h",
                 "other shoppers who ordered from the IP block"),
    OnlineSignal("address_cluster_shoppers_30d", "link_velocity",
                 "address cluster (normalised address, 號→号, 幢/棟→栋, 室 dropped)", "30 d",
                 "other shoppers who had orders sent to the address cluster"),
    OnlineSignal("neighbourhood_size_30d", "neighbourhood", "device ∪ address cluster ∪ IP block",
                 "30 d", "other shoppers sharing the device, address cluster or IP block"),
    OnlineSignal("neighbour_held_share_7d", "neighbourhood",
                 "device ∪ address cluster ∪ IP block", "7 d",
                 "share of the neighbours' orders held or declined at checkout"),
    OnlineSignal("neighbour_merchant_share_30d", "neighbourhood",
                 "device ∪ address cluster ∪ IP block, per merchant", "30 d",
                 "share of the neighbours' orders placed at this merchant"),
    OnlineSignal("linked_orders_same_merchant_6h", "splitting",
                 "(shopper ∪ neighbourhood, merchant)", "6 h",
                 "orders by the shopper or its neighbours at this merchant"),
    OnlineSignal("linked_amount_same_merchant_6h", "splitting",
                 "(shopper ∪ neighbourhood, merchant)", "6 h",
                 "their amount plus this order's, in minor units"),
    OnlineSignal("market_day_ratio", "market_pace", "the whole platform", "24 h vs 7 d",
                 "platform orders in 24 h over the daily mean of the 7 days before"),
    OnlineSignal("amount_vs_market_median_24h", "market_pace", "the whole platform", "24 h",
                 "this order's amount over the median order amount of the last 24 h"),
)  # fmt: skip
SIGNAL_NAMES = tuple(signal.name for signal in ONLINE_SIGNALS)
SIGNAL_GROUPS: dict[str, tuple[str, ...]] = {}
for _signal in ONLINE_SIGNALS:
    SIGNAL_GROUPS.setdefault(_signal.group, ())
    SIGNAL_GROUPS[_signal.group] += (_signal.name,)


@dataclass(frozen=True)
class RecordedOrder:
    order_id: str
    shopper_id: str
    merchant_id: str
    amount_minor: int
    created_at: datetime
    device_id: str | None
    ip_block: str | None
    address_cluster: str | None
    held_at_checkout: bool
    shopper_created_at: datetime


def recorded_orders(runtime: Runtime) -> list[RecordedOrder]:
    """Every order the engine recorded (declined ones too: the checkout saw them), oldest first."""
    with runtime.work(read_only=True) as work:
        rows = work.session.execute(
            select(
                *CHECKOUT_COLUMNS,
                Shopper.created_at,
            )
            .join(Shopper, Shopper.id == Order.shopper_id)
            .order_by(Order.created_at, Order.id)
        ).all()
    cipher = runtime.cipher
    return [
        RecordedOrder(
            order_id=order_id,
            shopper_id=shopper_id,
            merchant_id=merchant_id,
            amount_minor=int(amount),
            created_at=created_at,
            device_id=device_id,
            ip_block=ip_block(ip),
            address_cluster=address_cluster_key(
                cipher.decrypt(address_encrypted, field="shipping_address")
            )
            if address_encrypted
            else None,
            held_at_checkout=outcome in HELD_STATUSES_AT_CHECKOUT,
            shopper_created_at=shopper_created_at,
        )
        for (
            order_id,
            shopper_id,
            merchant_id,
            amount,
            created_at,
            device_id,
            ip,
            address_encrypted,
            outcome,
            shopper_created_at,
        ) in rows
    ]


def point_in_time_signals(orders: Sequence[RecordedOrder]) -> dict[str, dict[str, float]]:
    """Each order's signals from the orders recorded strictly before it (within 30 days)."""
    times = [order.created_at for order in orders]
    signals: dict[str, dict[str, float]] = {}
    for order in orders:
        now = order.created_at
        start = bisect.bisect_left(times, now - timedelta(days=30))
        end = bisect.bisect_left(times, now)  # strictly earlier orders only
        earlier = orders[start:end]

        def within(
            span: timedelta, rows: Iterable[RecordedOrder] = earlier, now: datetime = now
        ) -> list[RecordedOrder]:
            return [row for row in rows if row.created_at > now - span]

        day, week = timedelta(days=1), timedelta(days=7)
        at_merchant = [row for row in earlier if row.merchant_id == order.merchant_id]
        merchant_24h = within(day, at_merchant)
        merchant_week_before = [
            row for row in within(week + day, at_merchant) if row.created_at <= now - day
        ]
        device = {
            row.shopper_id
            for row in earlier
            if order.device_id and row.device_id == order.device_id
        } - {order.shopper_id}
        address = {
            row.shopper_id
            for row in earlier
            if order.address_cluster and row.address_cluster == order.address_cluster
        } - {order.shopper_id}
        block_24h = {
            row.shopper_id
            for row in within(day)
            if order.ip_block and row.ip_block == order.ip_block
        } - {order.shopper_id}
        block_30d = {
            row.shopper_id for row in earlier if order.ip_block and row.ip_block == order.ip_block
        } - {order.shopper_id}
        neighbours = device | address | block_30d
        neighbour_orders = [row for row in earlier if row.shopper_id in neighbours]
        neighbour_week = within(week, neighbour_orders)
        linked_6h = [
            row
            for row in within(timedelta(hours=6), at_merchant)
            if row.shopper_id in neighbours or row.shopper_id == order.shopper_id
        ]
        market_24h = within(day)
        market_week_before = [row for row in within(week + day) if row.created_at <= now - day]
        median_24h = (
            float(np.median([row.amount_minor for row in market_24h])) if market_24h else 0.0
        )
        signals[order.order_id] = {
            "merchant_orders_1h": float(len(within(timedelta(hours=1), at_merchant))),
            "merchant_burst_24h": len(merchant_24h) / (len(merchant_week_before) / 7 + 1),
            "merchant_new_shopper_share_24h": _share(
                sum(
                    row.created_at - row.shopper_created_at < timedelta(days=3)
                    for row in merchant_24h
                ),
                len(merchant_24h),
            ),
            "device_shoppers_30d": float(len(device)),
            "ip_block_shoppers_24h": float(len(block_24h)),
            "address_cluster_shoppers_30d": float(len(address)),
            "neighbourhood_size_30d": float(len(neighbours)),
            "neighbour_held_share_7d": _share(
                sum(row.held_at_checkout for row in neighbour_week), len(neighbour_week)
            ),
            "neighbour_merchant_share_30d": _share(
                sum(row.merchant_id == order.merchant_id for row in neighbour_orders),
                len(neighbour_orders),
            ),
            "linked_orders_same_merchant_6h": float(len(linked_6h)),
            "linked_amount_same_merchant_6h": float(
                order.amount_minor + sum(row.amount_minor for row in linked_6h)
            ),
            "market_day_ratio": len(market_24h) / (len(market_week_before) / 7 + 1),
            "amount_vs_market_median_24h": order.amount_minor / median_24h if median_24h else 0.0,
        }
    return signals


def _share(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


# -- the data a study reads ----------------------------------------------------------------------

# The checkout's features before the online signals were served (``risk/signals.py``), and the
# lab's signals the checkout does not serve under the same name (for a name it serves, the
# served value is the one recorded and studied).
RECORDED_NAMES = tuple(name for name in FEATURE_NAMES if name not in served.SIGNAL_NAMES)
LAB_ONLY_NAMES = tuple(name for name in SIGNAL_NAMES if name not in FEATURE_NAMES)
COLUMNS = ("world", "split", "order_id", "is_fraud", "typology", "amount_minor", *FEATURE_NAMES,
           *LAB_ONLY_NAMES)  # fmt: skip


def study_rows(
    world: str,
    split: str,
    orders: Sequence[DecidedOrder],
    signals: Mapping[str, Mapping[str, float]],
) -> list[dict[str, Any]]:
    rows = []
    for order in orders:
        extra = signals.get(order.order_id, {})
        rows.append(
            {
                "world": world,
                "split": split,
                "order_id": order.order_id,
                "is_fraud": int(order.is_fraud),
                "typology": order.typology or "",
                "amount_minor": order.amount_minor,
                **{name: float(extra.get(name, 0.0)) for name in LAB_ONLY_NAMES},
                **dict(zip(FEATURE_NAMES, order.features, strict=True)),
            }
        )
    return rows


def write_rows(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def read_rows(directory: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.csv")):
        with path.open(newline="", encoding="utf-8") as handle:
            for raw in csv.DictReader(handle):
                row: dict[str, Any] = dict(raw)
                for name in ("is_fraud", "amount_minor"):
                    row[name] = int(row[name])
                for name in (*FEATURE_NAMES, *LAB_ONLY_NAMES):
                    row[name] = float(row[name])
                rows.append(row)
    return rows


# -- the study -----------------------------------------------------------------------------------

HONEST_TOUCH_BUDGET = 0.005


@dataclass
class VariantResult:
    name: str
    features: list[str]
    threshold: float
    train_honest_touched: float
    auc: dict[str, float | None]
    caught_money: dict[str, float | None]
    honest_touched: dict[str, float | None]

    def summary(self) -> dict[str, Any]:
        def worst(values: Mapping[str, float | None], *, low: bool) -> float | None:
            known = [value for value in values.values() if value is not None]
            if not known:
                return None
            return min(known) if low else max(known)

        def mean(values: Mapping[str, float | None]) -> float | None:
            known = [value for value in values.values() if value is not None]
            return sum(known) / len(known) if known else None

        return {
            "variant": self.name,
            "features": len(self.features),
            "threshold": self.threshold,
            "train_honest_touched": self.train_honest_touched,
            "auc_worst": worst(self.auc, low=True),
            "auc_mean": mean(self.auc),
            "caught_money_worst": worst(self.caught_money, low=True),
            "caught_money_mean": mean(self.caught_money),
            "honest_touched_worst": worst(self.honest_touched, low=False),
            "honest_touched_mean": mean(self.honest_touched),
            "per_world": {
                world: {
                    "auc": self.auc[world],
                    "caught_money": self.caught_money[world],
                    "honest_touched": self.honest_touched[world],
                }
                for world in self.auc
            },
        }


def _matrix(rows: Sequence[Mapping[str, Any]], features: Sequence[str]) -> np.ndarray:
    return np.array([[float(row[name]) for name in features] for row in rows], dtype=np.float64)


def _fit(rows: Sequence[Mapping[str, Any]], features: Sequence[str], *, seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(
        max_iter=120, learning_rate=0.08, max_leaf_nodes=15, min_samples_leaf=10,
        l2_regularization=1.0, random_state=seed,
    )  # fmt: skip
    model.fit(_matrix(rows, features), np.array([row["is_fraud"] for row in rows]))
    return model


def _threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """The lowest threshold that touches at most the budget of honest orders (training)."""
    honest = np.sort(scores[labels == 0])[::-1]
    allowed = math.floor(HONEST_TOUCH_BUDGET * len(honest))
    threshold = float(honest[allowed]) + 1e-9 if allowed < len(honest) else 0.0
    touched = float(np.mean(honest >= threshold)) if len(honest) else 0.0
    return threshold, touched


def _auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    if labels.min() == labels.max():
        return None
    return float(roc_auc_score(labels, scores))


def evaluate_variant(
    name: str, features: Sequence[str], train: Sequence[Mapping[str, Any]],
    held_out: Sequence[Mapping[str, Any]], *, seed: int = 7,
) -> tuple[VariantResult, Any]:  # fmt: skip
    model = _fit(train, features, seed=seed)
    # The threshold comes from out-of-world scores (each training world scored by a model fitted
    # on the other training worlds): in-sample scores would set it too low.
    # Held-out worlds are scored by the mean of those fold models, so that the scores and the
    # threshold are on one scale.
    out_of_world = np.zeros(len(train))
    worlds = sorted({row["world"] for row in train})
    folds = []
    for world in worlds:
        inside = [index for index, row in enumerate(train) if row["world"] == world]
        others = [row for row in train if row["world"] != world]
        fold = _fit(others, features, seed=seed) if len(worlds) > 1 else model
        folds.append(fold)
        out_of_world[inside] = fold.predict_proba(_matrix([train[i] for i in inside], features))[
            :, 1
        ]
    threshold, touched = _threshold(out_of_world, np.array([row["is_fraud"] for row in train]))

    def score(rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        matrix = _matrix(rows, features)
        scores: np.ndarray = np.mean([fold.predict_proba(matrix)[:, 1] for fold in folds], axis=0)
        return scores

    result = VariantResult(name, list(features), threshold, touched, {}, {}, {})
    for world in sorted({row["world"] for row in held_out}):
        rows = [row for row in held_out if row["world"] == world]
        scores = score(rows)
        labels = np.array([row["is_fraud"] for row in rows])
        amounts = np.array([row["amount_minor"] for row in rows], dtype=np.float64)
        flagged = scores >= threshold
        fraud_money = float(amounts[labels == 1].sum())
        result.auc[world] = _auc(scores, labels)
        result.caught_money[world] = (
            float(amounts[(labels == 1) & flagged].sum()) / fraud_money if fraud_money else None
        )
        honest = labels == 0
        result.honest_touched[world] = float(flagged[honest].mean()) if honest.any() else None
    return result, model


def psi(expected: np.ndarray, actual: np.ndarray, *, bins: int = 10) -> float:
    """Population stability index of ``actual`` against ``expected`` (quantile bins of expected)."""
    if not len(expected) or not len(actual):
        return 0.0
    edges = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:
        return 0.0
    edges[0], edges[-1] = -np.inf, np.inf
    expected_share = np.histogram(expected, edges)[0] / len(expected)
    actual_share = np.histogram(actual, edges)[0] / len(actual)
    expected_share = np.clip(expected_share, 1e-4, None)
    actual_share = np.clip(actual_share, 1e-4, None)
    return float(np.sum((actual_share - expected_share) * np.log(actual_share / expected_share)))


def calibration(scores: np.ndarray, labels: np.ndarray, *, bins: int = 5) -> dict[str, Any]:
    edges = np.linspace(0, 1, bins + 1)
    table = []
    for low, high in itertools.pairwise(edges):
        chosen = (scores >= low) & ((scores < high) if high < 1 else (scores <= high))
        if chosen.any():
            table.append(
                {
                    "bin": f"{low:.1f}–{high:.1f}",
                    "orders": int(chosen.sum()),
                    "mean_score": float(scores[chosen].mean()),
                    "fraud_rate": float(labels[chosen].mean()),
                }
            )
    return {"brier": float(np.mean((scores - labels) ** 2)), "reliability": table}


def study(
    rows: Sequence[Mapping[str, Any]], *, seed: int = 7, served_signals: bool = False
) -> dict[str, Any]:
    """Base features vs base + new signals, and the ablation; trained on training worlds only.
    The new signals are the lab's (``ONLINE_SIGNALS``), or with ``served_signals`` those the
    checkout serves (``risk/signals.py``, recorded with each decision)."""
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    groups = served.SIGNAL_GROUPS if served_signals else SIGNAL_GROUPS
    # One thread: OpenMP workers spin and crawl on a busy shared machine, for no gain at this size.
    with threadpool_limits(limits=1):
        return _study(rows, seed=seed, groups=groups)


def _study(
    rows: Sequence[Mapping[str, Any]], *, seed: int, groups: Mapping[str, tuple[str, ...]]
) -> dict[str, Any]:
    train = [row for row in rows if row["split"] == "train"]
    held_out = [row for row in rows if row["split"] == "held_out"]
    if not train or not held_out:
        raise ValueError("a study needs rows of training and of held-out worlds")
    base = list(RECORDED_NAMES)
    everything = base + [name for names in groups.values() for name in names]
    variants: list[tuple[str, list[str]]] = [
        ("recorded features only", base),
        ("recorded + all new signals", everything),
    ]
    for group, names in groups.items():
        variants.append((f"all but {group}", [name for name in everything if name not in names]))
        variants.append((f"recorded + {group} only", base + list(names)))
    results = []
    full_model = None
    for name, features in variants:
        result, model = evaluate_variant(name, features, train, held_out, seed=seed)
        results.append(result.summary())
        if name == "recorded + all new signals":
            full_model = model
    assert full_model is not None
    held_scores = full_model.predict_proba(_matrix(held_out, everything))[:, 1]
    held_labels = np.array([row["is_fraud"] for row in held_out], dtype=np.float64)
    drift = {
        name: psi(
            np.array([row[name] for row in train], dtype=np.float64),
            np.array([row[name] for row in held_out], dtype=np.float64),
        )
        for name in (*FEATURE_NAMES, *LAB_ONLY_NAMES)
    }
    return {
        "train_rows": len(train),
        "train_fraud": sum(row["is_fraud"] for row in train),
        "held_out_rows": len(held_out),
        "held_out_fraud": sum(row["is_fraud"] for row in held_out),
        "honest_touch_budget": HONEST_TOUCH_BUDGET,
        "variants": results,
        "calibration_held_out": calibration(held_scores, held_labels),
        "drift_psi": dict(sorted(drift.items(), key=lambda item: -item[1])),
        "online_signals": [asdict(signal) for signal in ONLINE_SIGNALS],
    }
