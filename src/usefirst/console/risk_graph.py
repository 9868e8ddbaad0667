"""The ring as a picture: the shoppers, identifiers (devices, IPs, phones, addresses) and the
merchant named in a case's evidence, as nodes on a circle (the merchant at the top), drawn by
the template as server-side SVG. The layout is deterministic: same evidence, same picture."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from usefirst.risk.models import LinkObservation

WIDTH = 640
HEIGHT = 480
RADIUS = 180
MAX_NODES = 60
KIND_ORDER = {"merchant": 0, "shopper": 1, "device": 2, "ip": 3, "phone": 4, "address": 5}
COLOURS = {
    "merchant": "#6a1b9a",
    "shopper": "#1565c0",
    "device": "#ef6c00",
    "ip": "#00838f",
    "phone": "#2e7d32",
    "address": "#b71c1c",
}


@dataclass
class Node:
    key: str
    kind: str  # merchant | shopper | device | ip | phone | address
    label: str
    x: float = 0.0
    y: float = 0.0

    @property
    def colour(self) -> str:
        return COLOURS.get(self.kind, "#546e7a")


@dataclass
class Edge:
    source: Node
    target: Node


@dataclass
class RingGraph:
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    width: int = WIDTH
    height: int = HEIGHT
    truncated: bool = False

    @property
    def display_width(self) -> int:
        """How wide the drawing is shown: a small ring is drawn smaller (the layout's
        coordinates stay the same; the browser scales the view box)."""
        count = len(self.nodes)
        if count <= 3:
            return self.width // 2
        if count <= 8:
            return self.width * 3 // 4
        return self.width

    @property
    def kinds(self) -> list[tuple[str, str]]:
        present = {node.kind for node in self.nodes}
        return [(kind, COLOURS[kind]) for kind in KIND_ORDER if kind in present]


class _Builder:
    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.pairs: set[tuple[str, str]] = set()

    def node(self, key: str, kind: str, label: str) -> str:
        self.nodes.setdefault(key, Node(key=key, kind=kind, label=label))
        return key

    def link(self, first: str, second: str) -> None:
        if first != second:
            self.pairs.add((min(first, second), max(first, second)))


def _shopper(builder: _Builder, shopper_id: str) -> str:
    return builder.node(shopper_id, "shopper", shopper_id)


def build_ring_graph(
    *,
    subject_ids: Iterable[str],
    evidence: dict[str, Any],
    observations: Iterable[LinkObservation] = (),
    labels: dict[str, str] | None = None,
) -> RingGraph:
    """Nodes and edges from a case's evidence.

    Checkout signals carry ``links`` (an identifier of this order, the other shoppers holding it,
    whether the merchant holds it); ring signals carry ``members`` and ``shared_links`` (kind and
    a hash prefix), whose holders are found among the members' link observations."""
    builder = _Builder()
    subjects = list(subject_ids)
    merchant_ids = [subject for subject in subjects if subject.startswith("mer_")]
    shoppers = [subject for subject in subjects if subject.startswith("shp_")]
    signals = [signal.get("evidence") or {} for signal in evidence.get("signals", [])]
    for signal in signals:
        if signal.get("merchant_id"):
            merchant_ids.append(str(signal["merchant_id"]))
        shoppers.extend(str(member) for member in signal.get("members", []))
    merchant = merchant_ids[0] if merchant_ids else None
    if merchant is not None:
        builder.node(merchant, "merchant", merchant)
    for shopper_id in dict.fromkeys(shoppers):
        _shopper(builder, shopper_id)
        if merchant is not None:
            builder.link(shopper_id, merchant)
    held_by: dict[tuple[str, str], set[str]] = {}
    for row in observations:
        held_by.setdefault((row.kind, row.value_hash), set()).add(row.shopper_id)
    primary = shoppers[0] if shoppers else None
    checkout_links = 0
    for signal in signals:
        for link in signal.get("links", []):
            checkout_links += 1
            kind = str(link.get("kind", "device"))
            key = builder.node(f"link:{checkout_links}", kind, f"{kind} {checkout_links}")
            if primary is not None:
                builder.link(key, primary)
            for other in link.get("shopper_ids", []):
                builder.link(key, _shopper(builder, str(other)))
            if link.get("shared_with_merchant") and merchant is not None:
                builder.link(key, merchant)
        for shared in signal.get("shared_links", []):
            kind = str(shared.get("kind", "device"))
            reference = str(shared.get("value_ref", ""))
            key = builder.node(f"{kind}:{reference}", kind, f"{kind} {reference[:6]}")
            for (observed_kind, value_hash), holders in held_by.items():
                if observed_kind == kind and reference and value_hash.startswith(reference):
                    for holder in sorted(holders):
                        builder.link(key, _shopper(builder, holder))
    for key, label in (labels or {}).items():
        if key in builder.nodes:
            builder.nodes[key].label = label
    return _laid_out(builder)


def _laid_out(builder: _Builder) -> RingGraph:
    ordered = sorted(
        builder.nodes.values(), key=lambda node: (KIND_ORDER.get(node.kind, 9), node.key)
    )
    truncated = len(ordered) > MAX_NODES
    ordered = ordered[:MAX_NODES]
    centre_x, centre_y = WIDTH / 2, HEIGHT / 2
    # Every node on one circle, the merchant first at the top: no edge passes through a node.
    for index, node in enumerate(ordered):
        angle = -math.pi / 2 + 2 * math.pi * index / len(ordered)
        node.x = round(centre_x + RADIUS * math.cos(angle), 1)
        node.y = round(centre_y + RADIUS * math.sin(angle), 1)
    kept = {node.key: node for node in ordered}
    edges = [
        Edge(kept[first], kept[second])
        for first, second in sorted(builder.pairs)
        if first in kept and second in kept
    ]
    return RingGraph(nodes=ordered, edges=edges, truncated=truncated)
