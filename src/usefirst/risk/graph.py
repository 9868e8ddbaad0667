"""Link analysis: rings of shoppers tied together by what they share, scored and turned into cases.

The graph is bipartite: shoppers on one side, identifiers on the other — devices, IPs, phones and
shipping addresses (keyed hashes from the checkout link observations and the enrolment record),
address clusters (the ways one address is written folded into one key: the online signals'
events, ``risk/signals.py``), tracking numbers used on more than one order, and merchants' own
phone and address. A shopper counts while observed at a checkout in the window, or, by the
enrolment record alone, while a fresh account (enrolled in the last ``fresh_enrolment_days``: a
ring's mules are enrolled in a batch before it cashes out). An identifier
seen with one shopper only links nothing and is left out; one seen with very many shoppers (a
carrier's NAT address, a campus parcel locker) is common infrastructure and is left out too.

Connected components give the groups; a component too large to be one ring is split into
communities with the Leiden algorithm (modularity). Each group with enough members is scored from
what cash-out rings look like, each part in 0..1 and stated in the case evidence:

* ``cash_out``: share of members with resellable high-value orders at one merchant (at any
  merchant counts half: a ring needs a merchant, a synthetic cluster does not); the merchant is
  named a subject of the ring only when its shipping looks fake too, or it shares identifiers
  with the members — otherwise it is the cluster's victim;
* ``links``: how densely members share identifiers;
* ``size``: rings have several mules; three shoppers on one device may be a family;
* ``shipping``: share of those orders "shipped" with a reused tracking number or "delivered" within
  a day;
* ``unpaid``: share of members with an order overdue or charged off.

Groups scoring at or above the threshold are rings, and so are bursts whatever their score:
members who placed their first cash-out-shaped order at one merchant within ``burst_hours`` of
one another, most of the members who ordered at all, and three or more (two with two fresh
accounts or more) — a ring surfaces the night after its first mules cash out, before orders
stopped at checkout could show the shipping and unpaid parts. A ring is kept across runs
(matched by shared members) so the same ring updates its case instead of opening another; its
case lists the members and merchant, the shared identifiers, the orders and the money at risk,
and the ring's delivered but unsettled orders at its merchant are held from settlement and its
members' credit frozen (through the caller's ``effects``: those are other domains' changes).
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

import igraph
from sqlalchemy.orm import Session

from usefirst.identity.repository import IdentityRepository
from usefirst.kit.business_day import DailyContext
from usefirst.kit.crypto import FieldCipher, link_identifier_hash
from usefirst.kit.db import list_size
from usefirst.kit.ids import new_id
from usefirst.kit.settings import Settings
from usefirst.merchants.repository import MerchantRepository
from usefirst.orders.repository import OrderRepository
from usefirst.orders.tracking import normalise_tracking_number
from usefirst.repayment.repository import RepaymentRepository
from usefirst.risk import actions, cases, ring_freezing
from usefirst.risk.decision import rule_set_of
from usefirst.risk.effects import RiskEffects
from usefirst.risk.models import GraphRun, Ring
from usefirst.risk.repository import CLUSTER, RiskRepository

SCORE_WEIGHTS = {"cash_out": 0.35, "links": 0.15, "size": 0.15, "shipping": 0.20, "unpaid": 0.15}
# Orders on which the engine has money out or would have if released.
EXPOSED_STATUSES = ("review", "step_up", "approved", "shipped", "delivered", "overdue")
LENT_BALANCE_STATUSES = ("delivered", "overdue", "charged_off")
UNPAID_STATUSES = ("overdue", "charged_off")
DECIDED_BY = "graph"
# Enrolments hashed per statement by ``hash_enrolments``.
_CHUNK = 5000
_T = TypeVar("_T")


@dataclass(frozen=True)
class GraphParameters:
    ring_threshold: float = 0.5
    min_ring_members: int = 3
    # An identifier shared by more shoppers than this is infrastructure, not a tie.
    max_link_shoppers: int = 40
    # Components with more shoppers than this are split into communities.
    community_split_shoppers: int = 15
    window_days: int = 180
    cash_out_min_amount_minor: int = 30_000
    cash_out_min_resellable_share: float = 0.5
    fast_delivery_hours: int = 24
    # A burst (a ring whatever its score): members placed their first cash-out-shaped order at
    # one merchant within this many hours, at least this share of the members who ordered at
    # all, and ``min_ring_members`` or more (two or more, with two fresh accounts or more).
    burst_hours: int = 72
    burst_member_share: float = 0.8
    # Shoppers enrolled this recently count in the graph by their enrolment phone, device and IP
    # before their first order (fresh accounts: a ring's mules are enrolled in a batch before it
    # cashes out); older ones only while observed at a checkout in the window. 30 days since
    # issue 19's h19-rings2 (14 before): a batch enrolled two or three weeks before its ring
    # cashes out (aged accounts) had left the graph by the burst, so its first two mules were a
    # group of two and the ring surfaced only with its third mule's order, days later.
    fresh_enrolment_days: int = 30
    seed: int = 20_261_123


@dataclass
class RingFinding:
    """A scored group of linked shoppers."""

    members: list[str]
    merchant_id: str | None
    score: float
    parts: dict[str, float]
    shared_links: list[dict[str, Any]]
    order_ids: list[str]
    amount_at_risk_minor: int
    ring_id: str | None = None
    case_id: str | None = None
    # Members whose first cash-out-shaped order at the merchant came in one burst (``_burst``).
    burst_members: int = 0
    is_burst: bool = False
    # Which identifiers (``kind:value``) link which members: each identifier held by two or more
    # members, with those members. Whose credit the ring's case freezes reads it
    # (``risk.ring_freezing``); the case evidence keeps ``shared_links``, not the values.
    member_links: dict[str, list[str]] = field(default_factory=dict)

    def is_ring(self, parameters: GraphParameters) -> bool:
        return self.score >= parameters.ring_threshold or self.is_burst

    @property
    def subject_ids(self) -> list[str]:
        return ([self.merchant_id] if self.merchant_id else []) + self.members


@dataclass
class GraphRunSummary:
    run_id: str
    shoppers: int = 0
    link_values: int = 0
    edges: int = 0
    components: int = 0
    communities: int = 0
    rings_scored: int = 0
    rings_flagged: int = 0
    cases_opened: int = 0
    cases_updated: int = 0
    settlement_holds: int = 0
    rings: list[RingFinding] = field(default_factory=list)
    # The shoppers of components with at least ``min_ring_members`` shoppers.
    component_shoppers: set[str] = field(default_factory=set)
    mode: str = "full"  # full | incremental
    # The incremental run: shoppers it started from (changed since the last run or in its groups).
    changed_shoppers: int = 0

    def counts(self) -> dict[str, int]:
        return {
            "graph_shoppers": self.shoppers,
            "graph_link_values": self.link_values,
            "graph_components": self.components,
            "graph_communities": self.communities,
            "rings_flagged": self.rings_flagged,
            "ring_cases_opened": self.cases_opened,
            "ring_cases_updated": self.cases_updated,
            "ring_settlement_holds": self.settlement_holds,
        }


@dataclass(frozen=True)
class _OrderFacts:
    shopper_id: str
    order_id: str
    merchant_id: str
    status: str
    amount_minor: int
    exposure_minor: int
    is_cash_out_shaped: bool
    tracking_number: str | None
    delivered_within_minutes: float | None
    created_at: datetime


# -- the graph ---------------------------------------------------------------------------------


@dataclass
class LinkGraph:
    """Shopper → identifier edges, identifiers named ``kind:value``; merchants' own identifiers."""

    shopper_links: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    merchant_links: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    # The tracking numbers on more than one order in the window (the ``tracking:`` links).
    reused_tracking_numbers: set[str] = field(default_factory=set)
    # The true number of shoppers holding each identifier, when the graph holds only some
    # components (the incremental run): whether an identifier is kept depends on it.
    holder_counts: dict[str, int] | None = None
    # The identifiers ``find_groups`` kept (shared, and not infrastructure).
    kept: set[str] = field(default_factory=set)

    def add(self, shopper_id: str, kind: str, value: str | None) -> None:
        if value:
            self.shopper_links[shopper_id].add(f"{kind}:{value}")


def load_link_graph(
    session: Session, *, cipher: FieldCipher, since: datetime, parameters: GraphParameters
) -> LinkGraph:
    """The whole graph of the window (the full recompute)."""
    graph = LinkGraph()
    risk_repository = RiskRepository(session)
    for shopper_id, kind, value_hash in risk_repository.link_values_since(since):
        graph.add(shopper_id, kind, value_hash)
    for shopper_id, key_hash in risk_repository.cluster_links_since(since):
        graph.add(shopper_id, CLUSTER, key_hash)
    identity = IdentityRepository(session)
    fresh_since = _fresh_since(since, parameters)
    enrolment = identity.enrolment_identifiers(
        risk_repository.shoppers_observed_since(since).union(identity.enrolled_since(fresh_since))
    )
    _add_enrolment(graph, enrolment)
    _add_tracking_and_merchants(session, graph, since=since)
    return graph


def _fresh_since(since: datetime, parameters: GraphParameters) -> datetime:
    """Since when an enrolment makes a fresh account (``since`` is the window's start)."""
    return since + timedelta(days=parameters.window_days - parameters.fresh_enrolment_days)


def _add_enrolment(
    graph: LinkGraph, enrolment: Iterable[tuple[str, str, str | None, str | None]]
) -> None:
    for shopper_id, phone_hash, device_hash, ip_hash in enrolment:
        graph.add(shopper_id, "phone", phone_hash)
        graph.add(shopper_id, "device", device_hash)
        graph.add(shopper_id, "ip", ip_hash)


def _add_tracking_and_merchants(session: Session, graph: LinkGraph, *, since: datetime) -> None:
    reused = OrderRepository(session).shoppers_with_reused_tracking_numbers(shipped_since=since)
    for shopper_id, reused_number in reused:
        graph.add(shopper_id, "tracking", reused_number)
    graph.reused_tracking_numbers = {number for _, number in reused if number}
    for merchant_id, merchant_phone, merchant_address in MerchantRepository(
        session
    ).contact_hashes():
        if merchant_phone:
            graph.merchant_links[merchant_id].add(f"phone:{merchant_phone}")
        if merchant_address:
            graph.merchant_links[merchant_id].add(f"address:{merchant_address}")


def hash_enrolments(session: Session, *, cipher: FieldCipher) -> int:
    """Give the enrolment device and IP of shoppers enrolled before migration 0037 their link
    hashes (enrolment sets them since); how many shoppers. Run by every graph run before it reads
    them, so a book migrated from before needs no command; a few thousand shoppers a statement."""
    repository = IdentityRepository(session)
    done = 0
    while rows := repository.unhashed_enrolments(limit=_CHUNK):
        repository.set_enrolment_hashes(
            [
                (
                    shopper_id,
                    link_identifier_hash(cipher, "device", device_id),
                    link_identifier_hash(cipher, "ip", ip),
                )
                for shopper_id, device_id, ip in rows
            ]
        )
        done += len(rows)
    return done


# -- the incremental graph ---------------------------------------------------------------------
#
# Why it is exact. The graph of a night is a set of (shopper, identifier) edges plus the
# merchants' own identifiers; an identifier is kept by its number of holders alone. A connected
# component none of whose edges changed, none of whose identifiers gained or lost a holder, is the
# same component as at the last run. Every component of at least ``min_ring_members`` shoppers at
# the last run is stored (``risk_graph_members``) and its shoppers start the search; so do the
# shoppers whose edges changed since (identifiers observed since the last run, those that left
# the window, reused tracking numbers) and the identifiers that lost a holder. The search follows
# every kept identifier to all its holders (and through the merchants holding one), so it ends
# with whole components of today's graph; any component of ``min_ring_members`` shoppers today
# either contains a changed shopper or identifier or was stored. Groups are then found by the same
# code as the full run, on a graph holding exactly those components, with each identifier's true
# number of holders; Leiden runs on each component's own graph (``_component_graph``), the same
# whichever other components the graph holds. Order facts are read afresh for every group.
#
# Fresh accounts are shoppers too: those enrolled since the last run start the search, and those
# no longer fresh count as having left (their enrolment identifiers may have lost a holder).
# Address clusters come with the checkout's observations (the same order, the same time).
#
# What it does not see: an observation written after the run with an observed time more than
# ``_LATE_OBSERVATIONS`` before it, and an identifier whose holders drop from above
# ``max_link_shoppers`` to it by an erasure (a shopper's hashes overwritten) or, for an address
# cluster, by ``usefirst risk prune-signals`` (which deletes the events after their window). A
# full recompute (``usefirst risk graph --full``) covers these.

# Observations written up to this long after their observed time are still seen.
_LATE_OBSERVATIONS = timedelta(days=1)


@dataclass(frozen=True)
class _Base:
    """The last run the incremental one starts from."""

    run_id: str
    now: datetime
    since: datetime


def _merchant_digest(graph: LinkGraph) -> str:
    links = sorted(
        f"{merchant_id}|{value}"
        for merchant_id, values in graph.merchant_links.items()
        for value in values
    )
    return hashlib.sha256("\n".join(links).encode()).hexdigest()


def _incremental_base(
    session: Session, *, now: datetime, parameters: GraphParameters, merchant_digest: str
) -> _Base | None:
    """The last run, when an incremental run can start from it: it stored its components, with
    the same parameters and merchant identifiers, not after ``now``."""
    last = RiskRepository(session).last_graph_run()
    if last is None or not isinstance(last.parameters, dict):
        return None
    stored = last.parameters
    if (
        stored.get("merchant_links_digest") != merchant_digest
        or {name: stored.get(name) for name in asdict(parameters)} != asdict(parameters)
        or last.started_at > now
    ):
        return None
    return _Base(
        run_id=last.id,
        now=last.started_at,
        since=last.started_at - timedelta(days=parameters.window_days),
    )


def _changed_since(
    session: Session,
    *,
    base: _Base,
    since: datetime,
    tracking: LinkGraph,
    parameters: GraphParameters,
) -> tuple[set[str], set[str]]:
    """The shoppers to start from and the identifiers that may have lost a holder."""
    risk_repository = RiskRepository(session)
    identity = IdentityRepository(session)
    shoppers = set(risk_repository.graph_members())
    values: set[str] = set()
    for shopper_id, _, _ in risk_repository.observations_between(
        base.now - _LATE_OBSERVATIONS, None
    ):
        shoppers.add(shopper_id)
    # Fresh accounts enrolled since (their enrolment identifiers count from enrolment on).
    shoppers.update(identity.enrolled_between(base.now - _LATE_OBSERVATIONS, None))
    left = risk_repository.observations_between(base.since, since) if base.since < since else []
    left_shoppers = set()
    for shopper_id, kind, value_hash in left:
        left_shoppers.add(shopper_id)
        values.add(f"{kind}:{value_hash}")
    # Accounts no longer fresh: their enrolment identifiers count only while they are observed.
    base_fresh, fresh = _fresh_since(base.since, parameters), _fresh_since(since, parameters)
    if base_fresh < fresh:
        left_shoppers.update(identity.enrolled_between(base_fresh, fresh))
    shoppers |= left_shoppers
    for chunk in _chunks(session, sorted(left_shoppers)):
        for _, key_hash in risk_repository.cluster_links_of(chunk, since=base.since, before=since):
            values.add(f"{CLUSTER}:{key_hash}")
    # A shopper no longer observed in the window loses the enrolment identifiers too.
    for chunk in _chunks(session, sorted(left_shoppers)):
        for _, phone_hash, device_hash, ip_hash in IdentityRepository(
            session
        ).enrolment_identifiers(chunk):
            values |= {
                f"{kind}:{value}"
                for kind, value in (("phone", phone_hash), ("device", device_hash), ("ip", ip_hash))
                if value
            }
    # Reused tracking numbers are few: every shopper holding one starts the search.
    shoppers |= set(tracking.shopper_links)
    return shoppers, values


def _holders(
    session: Session,
    values: Sequence[str],
    *,
    since: datetime,
    tracking: LinkGraph,
    observed: set[str],
    fresh_since: datetime,
) -> dict[str, set[str]]:
    """Every shopper holding each of ``values`` (``kind:hash``) in today's graph. ``observed``:
    shoppers known to have an identifier observed since ``since`` or to be enrolled since
    ``fresh_since`` (their enrolment identifiers count without asking again); those found here
    are added to it."""
    holders: dict[str, set[str]] = {value: set() for value in values}
    by_kind: dict[str, list[str]] = defaultdict(list)
    for value in sorted(values):
        kind, _, value_hash = value.partition(":")
        if kind != "tracking":
            by_kind[kind].append(value_hash)
    risk_repository = RiskRepository(session)
    for chunk in _chunks(session, by_kind.pop(CLUSTER, [])):
        for shopper_id, value_hash in risk_repository.cluster_holders(chunk, since=since):
            holders[f"{CLUSTER}:{value_hash}"].add(shopper_id)
            observed.add(shopper_id)
    identity = IdentityRepository(session)
    enrolled: list[tuple[str, str]] = []
    for kind, hashes in by_kind.items():
        for chunk in _chunks(session, hashes):
            for shopper_id, value_hash in risk_repository.link_holders(kind, chunk, since=since):
                holders[f"{kind}:{value_hash}"].add(shopper_id)
                observed.add(shopper_id)
            if kind in ("phone", "device", "ip"):
                enrolled += [
                    (shopper_id, f"{kind}:{value_hash}")
                    for shopper_id, value_hash in identity.enrolment_holders(kind, chunk)
                ]
    # An enrolment identifier links its shopper only while the shopper is observed in the window;
    # most of them are known to be already (their links were read): ask about the others only.
    candidates = sorted({shopper_id for shopper_id, _ in enrolled} - observed)
    for shopper_chunk in _chunks(session, candidates):
        observed |= risk_repository.observed_among(shopper_chunk, since=since)
        observed |= identity.enrolled_among(shopper_chunk, since=fresh_since)
    for shopper_id, value in enrolled:
        if shopper_id in observed:
            holders[value].add(shopper_id)
    tracking_holders = _inverted(tracking.shopper_links)
    for value in values:
        if value.startswith("tracking:"):
            holders[value] = set(tracking_holders.get(value, ()))
    return holders


def _links_of(
    session: Session,
    shopper_ids: Sequence[str],
    *,
    since: datetime,
    graph: LinkGraph,
    observed: set[str],
    fresh_since: datetime,
) -> None:
    """Add the shoppers' edges of today's graph to ``graph`` (tracking ones are there already);
    those of them observed since ``since`` or enrolled since ``fresh_since`` to ``observed``."""
    risk_repository = RiskRepository(session)
    for chunk in _chunks(session, sorted(shopper_ids)):
        seen: set[str] = set()
        for shopper_id, kind, value_hash in risk_repository.link_values_of(chunk, since=since):
            graph.add(shopper_id, kind, value_hash)
            seen.add(shopper_id)
        for shopper_id, key_hash in risk_repository.cluster_links_of(chunk, since=since):
            graph.add(shopper_id, CLUSTER, key_hash)
            seen.add(shopper_id)
        identity = IdentityRepository(session)
        seen |= identity.enrolled_among([s for s in chunk if s not in seen], since=fresh_since)
        observed |= seen
        _add_enrolment(graph, identity.enrolment_identifiers(sorted(seen)))


def load_changed_components(
    session: Session,
    *,
    base: _Base,
    since: datetime,
    parameters: GraphParameters,
    known: LinkGraph,
) -> tuple[LinkGraph, int]:
    """The graph of every component that may differ from the last run's or held a group then
    (``known`` holds today's tracking and merchant links); how many shoppers it started from."""
    graph = LinkGraph(
        merchant_links=known.merchant_links, reused_tracking_numbers=known.reused_tracking_numbers
    )
    for shopper_id, values in known.shopper_links.items():
        graph.shopper_links[shopper_id] |= values
    merchant_holders = _inverted(known.merchant_links)
    seeds, seed_values = _changed_since(
        session, base=base, since=since, tracking=known, parameters=parameters
    )
    graph.holder_counts = {}
    seen_shoppers: set[str] = set()
    seen_values: set[str] = set()
    observed: set[str] = set()  # shoppers known to have an identifier observed in the window
    fresh_since = _fresh_since(since, parameters)
    frontier, frontier_values = seeds, seed_values
    while frontier or frontier_values:
        new_shoppers = sorted(frontier - seen_shoppers)
        seen_shoppers.update(new_shoppers)
        _links_of(
            session,
            new_shoppers,
            since=since,
            graph=graph,
            observed=observed,
            fresh_since=fresh_since,
        )
        values = set(frontier_values)
        for shopper_id in new_shoppers:
            values |= graph.shopper_links.get(shopper_id, set())
        new_values = sorted(values - seen_values)
        seen_values.update(new_values)
        holders = _holders(
            session,
            new_values,
            since=since,
            tracking=known,
            observed=observed,
            fresh_since=fresh_since,
        )
        frontier, frontier_values = set(), set()
        for value in new_values:
            count = len(holders[value])
            graph.holder_counts[value] = count
            if _is_kept(value, count, merchant_holders, parameters):
                frontier |= holders[value]
                for merchant_id in merchant_holders.get(value, ()):
                    frontier_values |= known.merchant_links[merchant_id]
    # Merchant identifiers no shopper of the search holds: their holders were counted above when
    # reached; the others belong to components without these shoppers.
    for shopper_id in list(graph.shopper_links):
        if shopper_id not in seen_shoppers:
            del graph.shopper_links[shopper_id]
    return graph, len(seeds)


@dataclass(frozen=True)
class _Group:
    shoppers: list[str]
    merchants: list[str]
    shared_links: list[tuple[str, int]]  # (identifier, member shoppers holding it)
    # Identifier → the member shoppers holding it, for those held by two or more.
    member_links: dict[str, list[str]] = field(default_factory=dict)


def _inverted(links: Mapping[str, set[str]]) -> dict[str, set[str]]:
    """Holder → identifiers made identifier → holders."""
    holders: dict[str, set[str]] = defaultdict(set)
    for holder, values in links.items():
        for value in values:
            holders[value].add(holder)
    return holders


def _is_kept(
    value: str, holders: int, merchant_holders: Mapping[str, set[str]], parameters: GraphParameters
) -> bool:
    return holders <= parameters.max_link_shoppers and (holders >= 2 or value in merchant_holders)


def find_groups(
    link_graph: LinkGraph, parameters: GraphParameters, summary: GraphRunSummary
) -> list[_Group]:
    """Connected components of the shopper–identifier graph, large ones split into Leiden
    communities; only groups with at least ``min_ring_members`` shoppers. The shoppers of every
    component with that many go to ``summary.component_shoppers`` (where the next incremental run
    starts)."""
    holders = _inverted(link_graph.shopper_links)
    merchant_holders = _inverted(link_graph.merchant_links)
    counts = link_graph.holder_counts or {}
    kept = {
        value
        for value, shoppers in holders.items()
        if _is_kept(value, counts.get(value, len(shoppers)), merchant_holders, parameters)
    }
    link_graph.kept = kept
    names: list[str] = []
    index: dict[str, int] = {}

    def vertex(name: str) -> int:
        if name not in index:
            index[name] = len(names)
            names.append(name)
        return index[name]

    edges: list[tuple[int, int]] = []
    for value in sorted(kept):
        link_vertex = vertex(f"link|{value}")
        for shopper_id in sorted(holders[value]):
            edges.append((vertex(f"shopper|{shopper_id}"), link_vertex))
        for merchant_id in sorted(merchant_holders.get(value, ())):
            edges.append((vertex(f"merchant|{merchant_id}"), link_vertex))
    graph = igraph.Graph(n=len(names), edges=edges)
    graph.vs["name"] = names
    summary.shoppers = sum(name.startswith("shopper|") for name in names)
    summary.link_values = len(kept)
    summary.edges = len(edges)
    clustering = graph.connected_components()
    summary.components = len(clustering)
    membership = clustering.membership
    component_edges: dict[int, list[tuple[int, int]]] = defaultdict(list)
    groups: list[_Group] = []
    for number, component in enumerate(clustering):
        shoppers = [names[v] for v in component if names[v].startswith("shopper|")]
        if len(shoppers) < parameters.min_ring_members:
            continue
        summary.component_shoppers.update(name.partition("|")[2] for name in shoppers)
        if len(shoppers) <= parameters.community_split_shoppers:
            parts = [list(component)]
        else:
            if not component_edges:
                for a, b in edges:
                    component_edges[membership[a]].append((a, b))
            parts = _communities(
                _component_graph(sorted(component), component_edges[number]),
                sorted(component),
                parameters.seed,
            )
        for vertices in parts:
            summary.communities += 1
            group = _group(graph, names, vertices)
            if len(group.shoppers) >= parameters.min_ring_members:
                groups.append(group)
    return groups


def _component_graph(component: Sequence[int], edges: Sequence[tuple[int, int]]) -> igraph.Graph:
    """One component's own graph: its vertices and edges in the whole graph's order, so that
    Leiden finds the same communities whatever other components the whole graph holds (the
    incremental run's graph holds only some)."""
    local = {v: i for i, v in enumerate(component)}
    return igraph.Graph(n=len(component), edges=[(local[a], local[b]) for a, b in edges])


def _communities(subgraph: igraph.Graph, component: Sequence[int], seed: int) -> list[list[int]]:
    # igraph draws from Python's random module: seed it for reproducible runs, then put it back.
    previous = random.getstate()
    random.seed(seed)
    try:
        clustering = subgraph.community_leiden(objective_function="modularity", n_iterations=-1)
    finally:
        random.setstate(previous)
    return [[component[v] for v in community] for community in clustering]


def _group(graph: igraph.Graph, names: list[str], vertices: Iterable[int]) -> _Group:
    members = set(vertices)
    shoppers, merchants, shared = [], [], []
    member_links: dict[str, list[str]] = {}
    for v in members:
        kind, _, value = names[v].partition("|")
        if kind == "shopper":
            shoppers.append(value)
        elif kind == "merchant":
            merchants.append(value)
        else:
            inside = [n for n in graph.neighbors(v) if n in members]
            holders = sorted(
                names[n].partition("|")[2] for n in inside if names[n].startswith("shopper|")
            )
            if len(inside) >= 2:
                shared.append((value, len(holders)))
            if len(holders) >= 2:
                member_links[value] = holders
    return _Group(
        sorted(shoppers), sorted(merchants), sorted(shared), dict(sorted(member_links.items()))
    )


# -- scoring -----------------------------------------------------------------------------------


def _chunks(session: Session, values: Sequence[_T]) -> Iterator[Sequence[_T]]:
    """``values`` in the lists one read takes (all at once on PostgreSQL: ``kit.db.in_list``)."""
    size = list_size(session) or max(len(values), 1)
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _resellable_share(items: Any, amount_minor: int, categories: frozenset[str]) -> float:
    resellable = 0
    for item in items or []:
        if str(item.get("category", "")).strip().casefold() in categories:
            resellable += int(item.get("quantity", 0)) * int(item.get("unit_price_minor", 0))
    return resellable / amount_minor if amount_minor > 0 else 0.0


def load_order_facts(
    session: Session,
    *,
    shopper_ids: Sequence[str],
    since: datetime,
    parameters: GraphParameters,
    resellable_categories: frozenset[str],
) -> dict[str, list[_OrderFacts]]:
    facts: dict[str, list[_OrderFacts]] = defaultdict(list)
    for chunk in _chunks(session, sorted(shopper_ids)):
        paid = RepaymentRepository(session).paid_principal_by_order(chunk)
        # Items matter only for orders large enough to be cash-out shaped.
        for order in OrderRepository(session).facts_of_shoppers_created_since(
            chunk, since=since, items_from_minor=parameters.cash_out_min_amount_minor
        ):
            balance = order.amount_minor - order.refunded_minor
            if order.status in LENT_BALANCE_STATUSES:
                exposure = max(balance - paid.get(order.id, 0), 0)
            elif order.status in EXPOSED_STATUSES:
                exposure = balance
            else:
                exposure = 0
            delivered_within = None
            if order.shipped_at is not None and order.delivered_at is not None:
                delivered_within = (order.delivered_at - order.shipped_at).total_seconds() / 60
            facts[order.shopper_id].append(
                _OrderFacts(
                    shopper_id=order.shopper_id,
                    order_id=order.id,
                    merchant_id=order.merchant_id,
                    status=order.status,
                    amount_minor=order.amount_minor,
                    exposure_minor=exposure,
                    is_cash_out_shaped=(
                        order.amount_minor >= parameters.cash_out_min_amount_minor
                        and _resellable_share(
                            order.items, order.amount_minor, resellable_categories
                        )
                        >= parameters.cash_out_min_resellable_share
                    ),
                    tracking_number=normalise_tracking_number(order.tracking_number or "") or None,
                    delivered_within_minutes=delivered_within,
                    created_at=order.created_at,
                )
            )
    return facts


def score_group(
    group: _Group,
    facts: Mapping[str, list[_OrderFacts]],
    reused_tracking: set[str],
    parameters: GraphParameters,
) -> RingFinding:
    members = group.shoppers
    count = len(members)
    # The parts are shares of the members who ordered in the window: fresh accounts with no
    # order yet (``fresh_enrolment_days``) neither dilute a ring nor make a household look
    # larger; they count in a burst only.
    ordering = sum(1 for shopper_id in members if facts.get(shopper_id))
    scored = max(ordering, 1)
    cash_out_members_at: dict[str, set[str]] = defaultdict(set)
    cash_out_members: set[str] = set()
    for shopper_id in members:
        for order in facts.get(shopper_id, []):
            if order.is_cash_out_shaped:
                cash_out_members_at[order.merchant_id].add(shopper_id)
                cash_out_members.add(shopper_id)
    merchant_id: str | None = None
    concentration = 0.0
    if cash_out_members_at:
        merchant_id = min(cash_out_members_at, key=lambda m: (-len(cash_out_members_at[m]), m))
        concentration = len(cash_out_members_at[merchant_id]) / scored
    cash_out = max(concentration, 0.5 * len(cash_out_members) / scored)
    burst_members = len(_burst(members, facts, merchant_id, parameters)) if merchant_id else 0
    # Members with no order in the window are fresh accounts (``fresh_enrolment_days``) held in
    # reserve, as a ring's next mules are: with two or more of them, two members cashing out
    # together suffice.
    is_burst = burst_members >= parameters.burst_member_share * ordering and (
        burst_members >= parameters.min_ring_members
        or (burst_members >= 2 and count - ordering >= 2)
    )
    tie_strength = sum(holders - 1 for _, holders in group.shared_links if holders >= 2)
    links = min(1.0, tie_strength / (2 * (count - 1)))
    size = max(0.0, min(1.0, (ordering - 2) / 5))
    shipped = [
        order
        for shopper_id in members
        for order in facts.get(shopper_id, [])
        if order.is_cash_out_shaped and order.tracking_number is not None
    ]
    suspicious_shipping = [
        order
        for order in shipped
        if order.tracking_number in reused_tracking
        or (
            order.delivered_within_minutes is not None
            and order.delivered_within_minutes <= parameters.fast_delivery_hours * 60
        )
    ]
    shipping = len(suspicious_shipping) / len(shipped) if shipped else 0.0
    unpaid_members = {
        shopper_id
        for shopper_id in members
        if any(order.status in UNPAID_STATUSES for order in facts.get(shopper_id, []))
    }
    unpaid = len(unpaid_members) / scored
    parts = {
        "cash_out": round(cash_out, 4),
        "links": round(links, 4),
        "size": round(size, 4),
        "shipping": round(shipping, 4),
        "unpaid": round(unpaid, 4),
    }
    score = round(sum(SCORE_WEIGHTS[name] * value for name, value in parts.items()), 4)
    is_merchant_complicit = shipping >= 0.5 or merchant_id in group.merchants
    if concentration < 0.5 or not is_merchant_complicit:
        # Not gathered around one merchant, or around one whose shipping looks genuine (a
        # victim of an identity cluster, not its accomplice): the merchant is no subject.
        merchant_id = None
    ring_orders = sorted(
        order.order_id
        for shopper_id in members
        for order in facts.get(shopper_id, [])
        if order.is_cash_out_shaped and (merchant_id is None or order.merchant_id == merchant_id)
    )
    at_risk = sum(
        order.exposure_minor for shopper_id in members for order in facts.get(shopper_id, [])
    )
    shared_links = [
        {
            "kind": value.partition(":")[0],
            "value_ref": value.partition(":")[2][:12],
            "shoppers": holders,
        }
        for value, holders in group.shared_links
    ]
    return RingFinding(
        members=members,
        merchant_id=merchant_id,
        score=score,
        parts=parts,
        shared_links=shared_links,
        order_ids=ring_orders,
        amount_at_risk_minor=at_risk,
        burst_members=burst_members,
        is_burst=is_burst,
        member_links=group.member_links,
    )


def _burst(
    members: Sequence[str],
    facts: Mapping[str, list[_OrderFacts]],
    merchant_id: str,
    parameters: GraphParameters,
) -> list[str]:
    """The most members whose first cash-out-shaped order at ``merchant_id`` came within
    ``burst_hours`` of one another (the earliest such window): a ring's fresh mules cash out at
    its merchant together; a household's members buy resellable goods, if at all, at different
    shops and times."""
    firsts = sorted(
        (
            min(
                order.created_at
                for order in facts.get(shopper_id, [])
                if order.is_cash_out_shaped and order.merchant_id == merchant_id
            ),
            shopper_id,
        )
        for shopper_id in members
        if any(
            order.is_cash_out_shaped and order.merchant_id == merchant_id
            for order in facts.get(shopper_id, [])
        )
    )
    window = timedelta(hours=parameters.burst_hours)
    best: tuple[int, int] = (0, 0)
    start = 0
    for end, (moment, _) in enumerate(firsts):
        while moment - firsts[start][0] > window:
            start += 1
        if end - start + 1 > best[1] - best[0]:
            best = (start, end + 1)
    return sorted(shopper_id for _, shopper_id in firsts[best[0] : best[1]])


def burst_cores(
    group: _Group,
    facts: Mapping[str, list[_OrderFacts]],
    link_graph: LinkGraph,
    parameters: GraphParameters,
) -> Iterator[_Group]:
    """The parts of a group that is not a ring around a burst at one merchant, for each merchant
    where two or more members cashed out (most first): the burst's members and the members tied
    to them by anything but an IP address (a device, phone, address or address cluster, a
    tracking number), through one another. A carrier NAT address or a shared office IP glues
    households to a ring's mules; a core is the ring without the glue, to be scored as its own
    group (only parts smaller than the group and of ``min_ring_members`` or more)."""
    members = set(group.shoppers)
    cash_out_at: dict[str, set[str]] = defaultdict(set)
    for shopper_id in members:
        for order in facts.get(shopper_id, []):
            if order.is_cash_out_shaped:
                cash_out_at[order.merchant_id].add(shopper_id)
    holders: dict[str, set[str]] = defaultdict(set)
    for shopper_id in members:
        for value in link_graph.shopper_links.get(shopper_id, ()):
            if value in link_graph.kept and not value.startswith("ip:"):
                holders[value].add(shopper_id)
    for merchant_id in sorted(cash_out_at, key=lambda m: (-len(cash_out_at[m]), m)):
        if len(cash_out_at[merchant_id]) < 2:
            break
        core = set(_burst(group.shoppers, facts, merchant_id, parameters))
        frontier = list(core)
        while frontier:
            shopper_id = frontier.pop()
            for value in link_graph.shopper_links.get(shopper_id, ()):
                for other in holders.get(value, ()):
                    if other not in core:
                        core.add(other)
                        frontier.append(other)
        if len(core) >= len(members) or len(core) < parameters.min_ring_members:
            continue
        counted: dict[str, list[str]] = defaultdict(list)
        for shopper_id in sorted(core):
            for value in link_graph.shopper_links.get(shopper_id, ()):
                if value in link_graph.kept:
                    counted[value].append(shopper_id)
        yield _Group(
            sorted(core),
            sorted(
                merchant
                for merchant in group.merchants
                if link_graph.merchant_links.get(merchant, set()) & counted.keys()
            ),
            sorted((value, len(held)) for value, held in counted.items() if len(held) >= 2),
            {value: held for value, held in sorted(counted.items()) if len(held) >= 2},
        )


# -- the run -----------------------------------------------------------------------------------


def score_groups(
    session: Session,
    *,
    cipher: FieldCipher,
    settings: Settings,
    now: datetime,
    parameters: GraphParameters,
    incremental: bool,
) -> tuple[GraphRunSummary, list[RingFinding], dict[str, Any]]:
    """Today's groups scored (every group, not only rings), the run's summary so far and what
    its record keeps of how it ran. ``incremental``: recompute only the components that may have
    changed since the last run (see above), when that run allows it; else the whole graph. The
    findings are the same either way."""
    rule_set = rule_set_of(session, settings)
    since = now - timedelta(days=parameters.window_days)
    summary = GraphRunSummary(run_id=new_id("graph_run"))
    hash_enrolments(session, cipher=cipher)
    known = LinkGraph()
    _add_tracking_and_merchants(session, known, since=since)
    digest = _merchant_digest(known)
    base = (
        _incremental_base(session, now=now, parameters=parameters, merchant_digest=digest)
        if incremental
        else None
    )
    if base is None:
        link_graph = load_link_graph(session, cipher=cipher, since=since, parameters=parameters)
    else:
        link_graph, summary.changed_shoppers = load_changed_components(
            session, base=base, since=since, parameters=parameters, known=known
        )
        summary.mode = "incremental"
    groups = find_groups(link_graph, parameters, summary)
    shopper_ids = sorted({shopper for group in groups for shopper in group.shoppers})
    facts = load_order_facts(
        session,
        shopper_ids=shopper_ids,
        since=since,
        parameters=parameters,
        resellable_categories=rule_set.resellable_categories,
    )
    findings = []
    for group in groups:
        finding = score_group(group, facts, link_graph.reused_tracking_numbers, parameters)
        if not finding.is_ring(parameters):
            # A ring glued to honest shoppers by a shared IP address is scored without them.
            for core in burst_cores(group, facts, link_graph, parameters):
                inner = score_group(core, facts, link_graph.reused_tracking_numbers, parameters)
                # Only as a burst: a core is cut around one, not around a score.
                if inner.is_burst:
                    finding = inner
                    break
        findings.append(finding)
    summary.rings_scored = len(findings)
    record = {
        **asdict(parameters),
        "rule_set_version": rule_set.version,
        "resellable_categories": sorted(rule_set.resellable_categories),
        "mode": summary.mode,
        "merchant_links_digest": digest,
        **(
            {"incremental_from": base.run_id, "changed_shoppers": summary.changed_shoppers}
            if base
            else {}
        ),
    }
    return summary, findings, record


def run_graph(
    session: Session,
    *,
    cipher: FieldCipher,
    settings: Settings,
    now: datetime,
    effects: RiskEffects,
    trigger: str = "on_demand",
    business_on: date | None = None,
    parameters: GraphParameters | None = None,
    incremental: bool = False,
) -> GraphRunSummary:
    """Build the graph, score its groups, keep rings and open or update their cases. Resellable
    goods are the categories of the rules in force, as at checkout. ``incremental``: only the
    components that may have changed since the last run are rebuilt (same rings and cases); the
    nightly run is, an on-demand one (an operator's full recompute) is not."""
    parameters = parameters or GraphParameters()
    summary, findings, record = score_groups(
        session,
        cipher=cipher,
        settings=settings,
        now=now,
        parameters=parameters,
        incremental=incremental,
    )
    flagged = sorted(
        (finding for finding in findings if finding.is_ring(parameters)),
        key=lambda finding: (-finding.score, finding.members),
    )
    summary.rings_flagged = len(flagged)
    repository = RiskRepository(session)
    known = repository.rings()
    for finding in flagged:
        _keep_ring(
            session,
            finding=finding,
            known=known,
            run_id=summary.run_id,
            now=now,
            summary=summary,
            effects=effects,
            parameters=parameters,
        )
    summary.rings = flagged
    repository.add(
        GraphRun(
            id=summary.run_id,
            trigger=trigger,
            business_on=business_on,
            shoppers=summary.shoppers,
            link_values=summary.link_values,
            edges=summary.edges,
            components=summary.components,
            communities=summary.communities,
            rings_scored=summary.rings_scored,
            rings_flagged=summary.rings_flagged,
            cases_opened=summary.cases_opened,
            cases_updated=summary.cases_updated,
            parameters=record,
            started_at=now,
            finished_at=now,
        )
    )
    repository.replace_graph_members(sorted(summary.component_shoppers), run_id=summary.run_id)
    session.flush()
    return summary


def _match(finding: RingFinding, known: list[Ring]) -> Ring | None:
    members = set(finding.members)
    best: tuple[float, Ring] | None = None
    for ring in known:
        shared = len(members & set(ring.members))
        overlap = shared / min(len(members), len(ring.members)) if shared else 0.0
        if overlap >= 0.5 and (best is None or overlap > best[0]):
            best = (overlap, ring)
    return best[1] if best else None


def _keep_ring(
    session: Session,
    *,
    finding: RingFinding,
    known: list[Ring],
    run_id: str,
    now: datetime,
    summary: GraphRunSummary,
    effects: RiskEffects,
    parameters: GraphParameters,
) -> None:
    ring = _match(finding, known)
    evidence = {
        "score": finding.score,
        "score_parts": finding.parts,
        "members": finding.members,
        "merchant_id": finding.merchant_id,
        "shared_links": finding.shared_links,
        "order_ids": finding.order_ids,
        "burst_members": finding.burst_members,
    }
    if ring is None:
        ring = Ring(
            id=new_id("ring"),
            anchor_id=finding.merchant_id or finding.members[0],
            merchant_id=finding.merchant_id,
            members=finding.members,
            member_count=len(finding.members),
            score=finding.score,
            evidence=evidence,
            amount_at_risk_minor=finding.amount_at_risk_minor,
            case_id=None,
            first_run_id=run_id,
            last_run_id=run_id,
            first_seen_at=now,
            last_seen_at=now,
        )
        RiskRepository(session).add(ring)
        known.append(ring)
        is_changed = True
    else:
        merged = sorted(set(ring.members) | set(finding.members))
        is_changed = merged != sorted(ring.members) or ring.evidence != evidence
        ring.members = merged
        ring.member_count = len(merged)
        ring.merchant_id = ring.merchant_id or finding.merchant_id
        ring.score = finding.score
        ring.evidence = evidence
        ring.amount_at_risk_minor = finding.amount_at_risk_minor
        ring.last_run_id = run_id
        ring.last_seen_at = now
    finding.ring_id = ring.id
    case = RiskRepository(session).get_case(ring.case_id) if ring.case_id else None
    case_is_open = case is not None and case.status != "resolved"
    # A resolved case is reopened (as a new case) only when the ring changed since.
    if case is None or case_is_open or is_changed:
        subjects = [
            ring.anchor_id,
            *([ring.merchant_id] if ring.merchant_id else []),
            *ring.members,
        ]
        before = case.id if case_is_open and case is not None else None
        opened = cases.open_or_update_case(
            session,
            case_type="ring",
            subject_ids=subjects,
            amount_at_risk_minor=finding.amount_at_risk_minor,
            evidence={"ring_id": ring.id, **evidence},
            reason=_reason(finding),
            now=now,
        )
        if before == opened.id:
            summary.cases_updated += 1
        else:
            summary.cases_opened += 1
        ring.case_id = opened.id
        _hold_unsettled(
            session,
            finding=finding,
            case_id=opened.id,
            now=now,
            summary=summary,
            effects=effects,
        )
        # Only the members with evidence of their own part (risk.ring_freezing), not every
        # shopper linked to the ring (a household, a NAT address).
        for shopper_id in ring_freezing.members_to_freeze(
            session,
            members=ring.members,
            ring_order_ids=finding.order_ids,
            member_links=finding.member_links,
            since=now - timedelta(days=parameters.window_days),
            cash_out_min_amount_minor=parameters.cash_out_min_amount_minor,
            fast_delivery_hours=parameters.fast_delivery_hours,
        ):
            effects.freeze_shopper_limit(
                session,
                shopper_id=shopper_id,
                case_id=opened.id,
                reason=_reason(finding),
                decided_by="graph",
                now=now,
            )
    finding.case_id = ring.case_id
    session.flush()


def _hold_unsettled(
    session: Session,
    *,
    finding: RingFinding,
    case_id: str,
    now: datetime,
    summary: GraphRunSummary,
    effects: RiskEffects,
) -> None:
    """A ring's orders at its merchant that the merchant could be paid for are held."""
    if finding.merchant_id is None or not finding.order_ids:
        return
    orders = OrderRepository(session).of_merchant_among(
        finding.order_ids,
        merchant_id=finding.merchant_id,
        statuses=("shipped", "delivered", "overdue"),
    )
    already_held = {
        order_id for _, order_id in actions.settlement_holds_of_case(session, case_id=case_id)
    }
    for order in orders:
        if order.id in already_held:
            continue
        effects.hold_settlement(
            session,
            merchant_id=order.merchant_id,
            order_id=order.id,
            case_id=case_id,
            reason="ring under investigation: do not pay out this order",
            decided_by=DECIDED_BY,
            now=now,
        )
        summary.settlement_holds += 1


def _reason(finding: RingFinding) -> str:
    around = (
        f"around merchant {finding.merchant_id}" if finding.merchant_id else "(no one merchant)"
    )
    kinds = Counter(link["kind"] for link in finding.shared_links)
    shared = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items())) or "none"
    return (
        f"{len(finding.members)} linked shoppers {around} share identifiers ({shared}); "
        f"ring score {finding.score:.2f}"
    )


def nightly_graph(
    session: Session, context: DailyContext, *, effects: RiskEffects
) -> dict[str, int]:
    """Daily job (after collections): one graph run per business date, in a step of the sweep of
    its own (committed on its own, timed on its own by ``bench/sweep.py``), incremental.

    It rebuilds only the components that may have changed since the last run (see "the
    incremental graph" above): it reads the observations made since the last run (less a day)
    and those that left the window (through the index on ``observed_at``), the shoppers of the
    last run's components of ``min_ring_members`` or more, and the reused tracking numbers; it then
    follows kept identifiers to their holders (indexed reads by shopper and by value) until the
    components are whole. Its cost is in the changed and grouped shoppers' links, not in the link
    window; Leiden runs only inside components of more than ``community_split_shoppers``
    shoppers, each on its own graph; order facts are read only for shoppers in groups. With no
    usable last run (the first, or other parameters or merchant identifiers) it reads the whole
    window, as ``usefirst risk graph`` always does."""
    if RiskRepository(session).nightly_graph_run(context.business_on) is not None:
        return {"graph_runs": 0}
    summary = run_graph(
        session,
        cipher=context.cipher,
        settings=context.settings,
        now=context.now,
        effects=effects,
        trigger="nightly",
        business_on=context.business_on,
        incremental=True,
    )
    return {"graph_runs": 1, **summary.counts()}
