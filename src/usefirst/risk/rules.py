"""Declarative risk rules: a versioned TOML file, editable without code.

Each rule has an ``id``, a condition ``when`` over checkout features, a ``score`` (points added to
the order's risk score) and/or an ``outcome`` (the least it sends the order to), and a plain
``reason``. Conditions are a small expression language parsed with :mod:`ast` and compiled to
closures: feature names, number and boolean literals, arithmetic (``+ - * /``, where ``x / 0`` is
0), comparisons (chained too), ``and``/``or``/``not`` and parentheses. Nothing else is accepted
and nothing is ever ``eval``-ed. A bad file is rejected as a whole with the line of each problem.

The compiled rule set is cached per process and per file version (path and modification time),
so a checkout pays for a ``stat`` only, and an edited file takes effect without a restart.
"""

from __future__ import annotations

import ast
import operator
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from usefirst.kit.toml_lines import toml_error_line, toml_lines
from usefirst.risk.features import DEFAULT_RESELLABLE_CATEGORIES, FEATURE_NAMES

DEFAULT_RULES_FILE = Path(__file__).with_name("rules.toml")
# Versions saved in the console live in config_versions under this kind.
RULES_CONFIG_KIND = "risk_rules"
# Besides the features, conditions may read the fraud model's probability (0 without a model).
EXTRA_NAMES = ("model_score", "has_model")
OUTCOME_SEVERITY = {"approved": 0, "step_up": 1, "review": 2, "declined": 3}
RULE_OUTCOMES = ("step_up", "review", "declined")
RULE_KEYS = {
    "id", "when", "score", "outcome", "reason", "reason_zh", "merchant_warning",
    "merchant_reason",
}  # fmt: skip
TOP_LEVEL_KEYS = {"version", "description", "thresholds", "model", "categories", "rules"}
THRESHOLD_KEYS = ("step_up_at", "review_at", "decline_at")
_RULE_ID = re.compile(r"[a-z][a-z0-9_]{0,63}")

Condition = Callable[[Mapping[str, float]], float]


class RuleFileError(ValueError):
    """A rule file that cannot be used; ``problems`` are ``(line, message)`` pairs."""

    def __init__(self, source: str, problems: list[tuple[int | None, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = [
            f"{source}:{line}: {message}" if line is not None else f"{source}: {message}"
            for line, message in problems
        ]
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class Rule:
    id: str
    when: str
    condition: Condition = field(repr=False, compare=False)
    score: int
    outcome: str | None
    reason: str
    reason_zh: str | None
    merchant_warning: bool
    merchant_reason: str | None


@dataclass(frozen=True)
class RuleHit:
    rule_id: str
    score: int
    outcome: str | None
    reason: str
    reason_zh: str | None
    merchant_warning: bool
    merchant_reason: str | None

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.rule_id, "score": self.score, "reason": self.reason}
        if self.outcome is not None:
            body["outcome"] = self.outcome
        if self.reason_zh is not None:
            body["reason_zh"] = self.reason_zh
        if self.merchant_warning:
            body["merchant_warning"] = True
        return body


@dataclass(frozen=True)
class Evaluation:
    hits: list[RuleHit]
    score: int
    outcome: str


@dataclass(frozen=True)
class RuleSet:
    version: str
    rules: tuple[Rule, ...]
    step_up_at: int
    review_at: int
    decline_at: int
    model_weight: int
    resellable_categories: frozenset[str]
    source: str

    def evaluate(self, values: Mapping[str, float], *, model_score: float | None) -> Evaluation:
        """Run every rule over the features (and the model's probability). The outcome is the
        most severe of the rules' outcomes and of what the total score reaches."""
        names = dict(values)
        names["model_score"] = model_score if model_score is not None else 0.0
        names["has_model"] = 1.0 if model_score is not None else 0.0
        hits = []
        outcome = "approved"
        score = round((model_score or 0.0) * self.model_weight)
        for rule in self.rules:
            if rule.condition(names):
                hits.append(
                    RuleHit(
                        rule_id=rule.id,
                        score=rule.score,
                        outcome=rule.outcome,
                        reason=rule.reason,
                        reason_zh=rule.reason_zh,
                        merchant_warning=rule.merchant_warning,
                        merchant_reason=rule.merchant_reason,
                    )
                )
                score += rule.score
                if rule.outcome and OUTCOME_SEVERITY[rule.outcome] > OUTCOME_SEVERITY[outcome]:
                    outcome = rule.outcome
        by_score = self.outcome_for_score(score)
        if OUTCOME_SEVERITY[by_score] > OUTCOME_SEVERITY[outcome]:
            outcome = by_score
        return Evaluation(hits=hits, score=score, outcome=outcome)

    def outcome_for_score(self, score: int) -> str:
        if score >= self.decline_at:
            return "declined"
        if score >= self.review_at:
            return "review"
        if score >= self.step_up_at:
            return "step_up"
        return "approved"


# --- the expression language ---------------------------------------------------------------

_COMPARISONS: dict[type[ast.cmpop], Callable[[float, float], bool]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}


def _divide(left: float, right: float) -> float:
    return left / right if right else 0.0


_ARITHMETIC: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: _divide,
}


class ConditionError(ValueError):
    def __init__(self, message: str, column: int | None = None) -> None:
        super().__init__(message)
        self.column = column


# Limits that keep a hostile or mistyped file a reported problem rather than a crash (Python's
# parser and the recursive compiler give up on deep nesting; a huge integer does not fit a float).
# They are far beyond any sensible rule: the shipped rules nest 3 deep and stay under 140
# characters, and amounts in minor units stay far below 10**15.
MAX_CONDITION_CHARACTERS = 2_000
MAX_CONDITION_DEPTH = 32
MAX_NUMBER = 10**15


def compile_condition(text: str, *, names: frozenset[str]) -> Condition:
    """Compile a condition to a closure over a mapping of names to numbers."""
    if not text.strip():
        raise ConditionError("the condition is empty")
    if len(text) > MAX_CONDITION_CHARACTERS:
        raise ConditionError(f"is longer than {MAX_CONDITION_CHARACTERS} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        raise ConditionError(f"not a valid expression ({error.msg})", error.offset) from None
    except (RecursionError, MemoryError):
        raise ConditionError(f"nests deeper than {MAX_CONDITION_DEPTH} levels") from None
    except ValueError as error:  # a null character, an integer too long to read
        raise ConditionError(f"not a valid expression ({error})") from None
    _check_depth(tree.body)
    return _compile(tree.body, names)


def _check_depth(root: ast.AST) -> None:
    """Iteratively, so that the check itself cannot exhaust the stack."""
    pending = [(root, 1)]
    while pending:
        node, depth = pending.pop()
        if depth > MAX_CONDITION_DEPTH:
            column = getattr(node, "col_offset", None)
            raise ConditionError(
                f"nests deeper than {MAX_CONDITION_DEPTH} levels",
                column + 1 if column is not None else None,
            )
        pending.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


def _compile(node: ast.AST, names: frozenset[str]) -> Condition:
    column = getattr(node, "col_offset", None)
    column = column + 1 if column is not None else None
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, int | float):  # bool is an int
            if not -MAX_NUMBER <= value <= MAX_NUMBER:  # also inf and nan, from 1e400
                raise ConditionError("numbers must lie between -10**15 and 10**15", column)
            number = float(value)
            return lambda values: number
        raise ConditionError(f"only numbers and true/false are allowed, not {value!r}", column)
    if isinstance(node, ast.Name):
        name = node.id
        if name in ("true", "True"):
            return lambda values: 1.0
        if name in ("false", "False"):
            return lambda values: 0.0
        if name not in names:
            raise ConditionError(f"unknown name {name!r}", column)
        return lambda values: values[name]
    if isinstance(node, ast.BoolOp):
        parts = [_compile(value, names) for value in node.values]
        if len(parts) == 2:
            # Two operands (most rules'): the same short-circuit without a generator.
            first_part, second_part = parts
            if isinstance(node.op, ast.And):
                return lambda values: 1.0 if first_part(values) and second_part(values) else 0.0
            return lambda values: 1.0 if first_part(values) or second_part(values) else 0.0
        if isinstance(node.op, ast.And):
            return lambda values: 1.0 if all(part(values) for part in parts) else 0.0
        return lambda values: 1.0 if any(part(values) for part in parts) else 0.0
    if isinstance(node, ast.UnaryOp):
        operand = _compile(node.operand, names)
        if isinstance(node.op, ast.Not):
            return lambda values: 0.0 if operand(values) else 1.0
        if isinstance(node.op, ast.USub):
            return lambda values: -operand(values)
        if isinstance(node.op, ast.UAdd):
            return operand
        raise ConditionError("this unary operator is not allowed", column)
    if isinstance(node, ast.BinOp):
        function = _ARITHMETIC.get(type(node.op))
        if function is None:
            raise ConditionError("only + - * / are allowed", column)
        left, right = _compile(node.left, names), _compile(node.right, names)
        return lambda values: function(left(values), right(values))
    if isinstance(node, ast.Compare):
        terms = [_compile(node.left, names)] + [_compile(item, names) for item in node.comparators]
        tests = []
        for op in node.ops:
            comparison = _COMPARISONS.get(type(op))
            if comparison is None:
                raise ConditionError("only < <= > >= == != comparisons are allowed", column)
            tests.append(comparison)
        if len(tests) == 1:
            # One comparison (nearly every rule's): the same test without the chain's list.
            first_term, second_term, test = terms[0], terms[1], tests[0]
            return lambda values: 1.0 if test(first_term(values), second_term(values)) else 0.0

        def compare(values: Mapping[str, float]) -> float:
            evaluated = [term(values) for term in terms]
            return (
                1.0
                if all(test(evaluated[i], evaluated[i + 1]) for i, test in enumerate(tests))
                else 0.0
            )

        return compare
    kind = type(node).__name__
    raise ConditionError(f"{kind} is not allowed in a condition", column)


# --- loading -------------------------------------------------------------------------------


def parse_rule_set(text: str, *, source: str = "rules.toml") -> RuleSet:
    """Parse and validate a rule file; every problem is reported with its line."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise RuleFileError(
            source, [(toml_error_line(error, text), f"not valid TOML: {error}")]
        ) from None
    positions = toml_lines(text, array_table="rules")
    headers, rule_keys, top = positions.entries, positions.entry_keys, positions.top
    problems: list[tuple[int | None, str]] = []
    for key in document:
        if key not in TOP_LEVEL_KEYS:
            problems.append((top.get(key), f"unknown top-level key {key!r}"))
    version = document.get("version")
    if not isinstance(version, str) or not version.strip() or len(version) > 64:
        problems.append((top.get("version"), "version must be a non-empty string (max 64)"))
        version = ""
    thresholds = document.get("thresholds", {})
    limits: dict[str, int] = {}
    if not isinstance(thresholds, dict):
        problems.append((top.get("thresholds"), "[thresholds] must be a table"))
        thresholds = {}
    for key in thresholds:
        if key not in THRESHOLD_KEYS:
            problems.append((top.get(key, top.get("thresholds")), f"unknown threshold {key!r}"))
    for key in THRESHOLD_KEYS:
        value = thresholds.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            problems.append(
                (
                    top.get(key, top.get("thresholds")),
                    f"thresholds.{key} must be a positive integer",
                )
            )
        else:
            limits[key] = value
    if len(limits) == 3 and not limits["step_up_at"] <= limits["review_at"] <= limits["decline_at"]:
        problems.append(
            (top.get("thresholds"), "thresholds must satisfy step_up_at <= review_at <= decline_at")
        )
    model = document.get("model", {})
    model_weight = model.get("weight", 0) if isinstance(model, dict) else None
    if isinstance(model_weight, bool) or not isinstance(model_weight, int) or model_weight < 0:
        problems.append(
            (top.get("weight", top.get("model")), "model.weight must be an integer >= 0")
        )
        model_weight = 0
    categories = document.get("categories", {})
    resellable_raw = (
        categories.get("resellable", sorted(DEFAULT_RESELLABLE_CATEGORIES))
        if isinstance(categories, dict)
        else None
    )
    if not isinstance(resellable_raw, list) or not all(isinstance(c, str) for c in resellable_raw):
        problems.append((top.get("resellable"), "categories.resellable must be a list of strings"))
        resellable_raw = []
    names = frozenset(FEATURE_NAMES) | frozenset(EXTRA_NAMES)
    rules: list[Rule] = []
    seen: set[str] = set()
    raw_rules = document.get("rules", [])
    if not isinstance(raw_rules, list):
        problems.append((top.get("rules"), "rules must be written as [[rules]] tables"))
        raw_rules = []
    for index, raw in enumerate(raw_rules):
        header = headers[index] if index < len(headers) else None
        lines = rule_keys[index] if index < len(rule_keys) else {}
        rule, rule_problems = _parse_rule(raw, index=index, header=header, lines=lines,
                                          names=names, seen=seen)  # fmt: skip
        problems.extend(rule_problems)
        if rule is not None:
            rules.append(rule)
    if problems:
        raise RuleFileError(source, problems)
    return RuleSet(
        version=str(version),
        rules=tuple(rules),
        step_up_at=limits["step_up_at"],
        review_at=limits["review_at"],
        decline_at=limits["decline_at"],
        model_weight=int(model_weight),
        resellable_categories=frozenset(c.strip().casefold() for c in resellable_raw),
        source=source,
    )


def _parse_rule(
    raw: Any,
    *,
    index: int,
    header: int | None,
    lines: dict[str, int],
    names: frozenset[str],
    seen: set[str],
) -> tuple[Rule | None, list[tuple[int | None, str]]]:
    problems: list[tuple[int | None, str]] = []
    label = f"rule #{index + 1}"
    if not isinstance(raw, dict):
        return None, [(header, f"{label} must be a table")]
    rule_id = raw.get("id")
    if not isinstance(rule_id, str) or not _RULE_ID.fullmatch(rule_id):
        problems.append((lines.get("id", header), f"{label}: id must be lower_snake_case"))
    else:
        label = f"rule {rule_id!r}"
        if rule_id in seen:
            problems.append((lines.get("id", header), f"{label}: duplicate id"))
        seen.add(rule_id)
    for key in raw:
        if key not in RULE_KEYS:
            problems.append((lines.get(key, header), f"{label}: unknown key {key!r}"))
    when = raw.get("when")
    condition: Condition | None = None
    if not isinstance(when, str):
        problems.append((lines.get("when", header), f"{label}: when must be a string condition"))
    else:
        try:
            condition = compile_condition(when, names=names)
        except ConditionError as error:
            where = f" (column {error.column})" if error.column else ""
            problems.append((lines.get("when", header), f"{label}: condition {error}{where}"))
    score = raw.get("score", 0)
    if isinstance(score, bool) or not isinstance(score, int) or not -1000 <= score <= 1000:
        problems.append((lines.get("score", header), f"{label}: score must be an integer"))
        score = 0
    outcome = raw.get("outcome")
    if outcome is not None and outcome not in RULE_OUTCOMES:
        problems.append(
            (lines.get("outcome", header), f"{label}: outcome must be one of {RULE_OUTCOMES}")
        )
    if not score and outcome is None:
        problems.append((header, f"{label}: give a score, an outcome or both"))
    texts: dict[str, str | None] = {}
    for key in ("reason", "reason_zh", "merchant_reason"):
        value = raw.get(key)
        if value is not None and (not isinstance(value, str) or not 1 <= len(value.strip()) <= 300):
            problems.append((lines.get(key, header), f"{label}: {key} must be 1 to 300 characters"))
            value = None
        texts[key] = value.strip() if isinstance(value, str) else None
    if texts["reason"] is None and "reason" not in raw:
        problems.append((header, f"{label}: reason is required"))
    merchant_warning = raw.get("merchant_warning", False)
    if not isinstance(merchant_warning, bool):
        problems.append(
            (lines.get("merchant_warning", header), f"{label}: merchant_warning must be true/false")
        )
        merchant_warning = False
    if merchant_warning and texts["merchant_reason"] is None:
        problems.append((header, f"{label}: a merchant warning needs merchant_reason"))
    if problems or condition is None:
        return None, problems
    return (
        Rule(
            id=str(rule_id),
            when=str(when),
            condition=condition,
            score=int(score),
            outcome=outcome,
            reason=str(texts["reason"]),
            reason_zh=texts["reason_zh"],
            merchant_warning=merchant_warning,
            merchant_reason=texts["merchant_reason"],
        ),
        [],
    )


def load_rule_file(path: Path) -> RuleSet:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise RuleFileError(str(path), [(None, f"cannot read the file: {error}")]) from None
    return parse_rule_set(text, source=str(path))


@lru_cache(maxsize=8)
def _cached(path: str, modified_ns: int) -> RuleSet:
    return load_rule_file(Path(path))


def active_rule_set(path: Path | None = None) -> RuleSet:
    """The rule set in force: the given file (settings ``risk_rules_file``) or the default one,
    compiled once per file version and process."""
    chosen = path or DEFAULT_RULES_FILE
    try:
        modified_ns = chosen.stat().st_mtime_ns
    except OSError as error:
        raise RuleFileError(str(chosen), [(None, f"cannot read the file: {error}")]) from None
    return _cached(str(chosen), modified_ns)
