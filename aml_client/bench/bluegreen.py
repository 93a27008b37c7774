"""Blue/green in one run: which deployment each request goes to, and whether their answers agree.

``amlc bench --deployments blue,green`` sends the same request bodies to every deployment,
pinned with the ``azureml-model-deployment`` request header, under one load model. Each load
process deals its scheduled slots (closed-model claims or open-model due times alike) out in
*groups* of one slot per deployment: group ``g`` sends one request body to every deployment,
in an order rotated by one from group to group — ``blue green``, ``green blue``, ``blue
green`` … for two (ABBA), each deployment in each position equally often for more. So:

* every deployment gets the same bodies, the same number of requests and the same share of
  the load, at the same moments of the run (drift of a shared machine hits all alike);
* neither always goes first: behind a shared queue, or on one machine, the request sent second
  waits a little longer; rotating the order cancels that out;
* the answers to one body arrive close together in the process that sent them, so their
  predictions are compared there and only the counts travel: memory stays bounded.

:class:`PredictionMatcher` holds each group's predictions until every deployment has
answered (bounded in groups and bytes; a group it cannot hold is counted as not compared)
and adds the outcome to :class:`~aml_client.bench.result.AgreementCounts`.

No Locust, no gevent: the load process uses this, and tests run it anywhere.
"""

from __future__ import annotations

import json
import math
import re
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aml_client.bench.result import AgreementCounts

__all__ = [
    "AGREEMENT_RULE",
    "INTERLEAVING",
    "MAX_DEPLOYMENTS",
    "PredictionMatcher",
    "Slot",
    "assign",
    "parse_deployments",
    "same_prediction",
]

INTERLEAVING = (
    "each load process deals its slots out in groups of one per deployment: a group sends one "
    "request body to every deployment (pinned with azureml-model-deployment), in an order "
    "rotated by one each group (blue, green, then green, blue: ABBA), so every deployment gets "
    "the same bodies and the same share of the load at the same moments, and none always goes "
    "first"
)
#: Deployments one run may compare.
MAX_DEPLOYMENTS = 8
#: Numbers closer than this count as the same prediction (float32 ONNX vs float64
#: scikit-learn differ around the 7th significant digit).
REL_TOLERANCE = 1e-4
ABS_TOLERANCE = 1e-6
AGREEMENT_RULE = (
    "a row agrees when every deployment gives the baseline's prediction: labels, strings and "
    f"booleans equal, numbers within {REL_TOLERANCE:g} relative or {ABS_TOLERANCE:g} absolute, "
    "lists and objects element by element"
)
#: Groups waiting for their last answer, and the response bytes they may hold, at most.
MAX_PENDING_GROUPS = 50_000
MAX_HELD_BYTES = 32 * 1024 * 1024
#: How deep a prediction is compared before the rest is compared as a whole.
_MAX_DEPTH = 32
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_EXAMPLE_CHARS = 60


@dataclass(frozen=True, slots=True)
class Slot:
    """Where one slot goes: its ``group``, the request ``body`` index (before wrapping around
    the run's bodies) and the ``deployment``."""

    group: int
    body: int
    deployment: str


def assign(
    local_slot: int, deployments: Sequence[str], *, share_index: int = 0, share_count: int = 1
) -> Slot:
    """The deployment and body of a load process's ``local_slot``-th slot (0, 1, 2 …).

    Group ``g = local_slot // D`` rotates the deployments by ``g``; the body is the group's
    place in the whole run, so load process ``share_index`` of ``share_count`` takes groups
    ``share_index``, ``share_index + share_count`` … as it takes every W-th slot without
    deployments.
    """
    count = len(deployments)
    group, position = divmod(local_slot, count)
    return Slot(
        group=group,
        body=group * share_count + share_index,
        deployment=deployments[(position + group) % count],
    )


def parse_deployments(text: str) -> list[str]:
    """``"blue,green"`` -> ``["blue", "green"]``; ValueError saying what is wrong."""
    names = [part.strip() for part in (text or "").split(",") if part.strip()]
    if len(names) < 2:
        raise ValueError(f"{text!r}: name at least two deployments, e.g. blue,green")
    if len(names) > MAX_DEPLOYMENTS:
        raise ValueError(f"{text!r}: at most {MAX_DEPLOYMENTS} deployments")
    for name in names:
        if not _NAME.fullmatch(name):
            raise ValueError(
                f"{name!r} is not a deployment name (letters, digits, '.', '_', '-', at most 64)"
            )
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"{text!r}: {duplicates[0]} is named twice")
    return names


def same_prediction(a: Any, b: Any, depth: int = 0) -> bool:
    """Whether two predictions agree (see :data:`AGREEMENT_RULE`)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return math.isclose(a, b, rel_tol=REL_TOLERANCE, abs_tol=ABS_TOLERANCE)
    if depth >= _MAX_DEPTH:
        return bool(a == b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(
            same_prediction(x, y, depth + 1) for x, y in zip(a, b, strict=True)
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(
            same_prediction(a[k], b[k], depth + 1) for k in a
        )
    return bool(a == b)


def _show(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= _EXAMPLE_CHARS else text[: _EXAMPLE_CHARS - 1] + "…"


@dataclass(slots=True)
class _Pending:
    body: int
    answers: dict[str, list[Any] | None]
    held_bytes: int = 0


class PredictionMatcher:
    """Pairs up the deployments' answers to each group's body and counts their agreement.

    ``add`` takes one answer (its predictions, or None for a failure); when the group's last
    deployment has answered, the predictions are compared with the baseline's (the first
    deployment) and the group leaves memory. ``flush`` counts the groups still waiting (the
    run ended before every deployment answered) as not compared.
    """

    def __init__(self, deployments: Sequence[str]) -> None:
        if len(deployments) < 2:
            raise ValueError("a blue/green run compares at least two deployments")
        self.deployments = tuple(deployments)
        self._pending: OrderedDict[int, _Pending] = OrderedDict()
        self._held_bytes = 0
        # Groups given up on (memory bound): their late answers are ignored, not re-counted.
        self._dropped: set[int] = set()
        self._dropped_order: deque[int] = deque()

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def held_bytes(self) -> int:
        return self._held_bytes

    def add(
        self,
        group: int,
        deployment: str,
        body: int,
        predictions: list[Any] | None,
        counts: AgreementCounts,
        size: int = 0,
    ) -> None:
        """One deployment's answer to ``group`` (``size``: its response bytes, for the bound)."""
        entry = self._pending.get(group)
        if entry is None:
            if group in self._dropped:
                return
            entry = self._pending[group] = _Pending(body, {})
            while len(self._pending) > MAX_PENDING_GROUPS:
                self._drop_oldest(counts)
        if predictions is not None and self._held_bytes + size > MAX_HELD_BYTES:
            predictions = None  # too much held: this group is not compared
        entry.answers[deployment] = predictions
        if predictions is not None:
            entry.held_bytes += size
            self._held_bytes += size
        if len(entry.answers) >= len(self.deployments):
            del self._pending[group]
            self._held_bytes -= entry.held_bytes
            self._judge(entry, counts)

    def flush(self, counts: AgreementCounts) -> None:
        """Count every group still waiting as not compared, and forget it."""
        counts.not_compared += len(self._pending)
        self._pending.clear()
        self._held_bytes = 0

    def _drop_oldest(self, counts: AgreementCounts) -> None:
        group, entry = self._pending.popitem(last=False)
        self._held_bytes -= entry.held_bytes
        self._dropped.add(group)
        self._dropped_order.append(group)
        if len(self._dropped_order) > MAX_PENDING_GROUPS:
            self._dropped.discard(self._dropped_order.popleft())
        counts.not_compared += 1

    def _judge(self, entry: _Pending, counts: AgreementCounts) -> None:
        answers = entry.answers
        baseline_name = self.deployments[0]
        baseline = answers.get(baseline_name)
        others = [(name, answers.get(name)) for name in self.deployments[1:]]
        if baseline is None or any(value is None for _, value in others):
            counts.not_compared += 1
            return
        rows = max(len(baseline), *(len(value or []) for _, value in others))
        agreeing = 0
        first_miss: str | None = None
        try:
            if all(len(value or []) == len(baseline) for _, value in others):
                for index, expected in enumerate(baseline):
                    miss = next((name for name, value in others
                                 if not same_prediction(expected, (value or [])[index])), None)
                    if miss is None:
                        agreeing += 1
                    elif first_miss is None:
                        got = (answers[miss] or [])[index]
                        first_miss = (f"body {entry.body + 1}, row {index + 1}: "
                                      f"{baseline_name} {_show(expected)}, {miss} {_show(got)}")
            else:
                first_miss = (f"body {entry.body + 1}: {baseline_name} gave {len(baseline)} "
                              "predictions, " + ", ".join(
                                  f"{name} {len(value or [])}" for name, value in others))
        except RecursionError:  # a pathological answer: not comparable, not a crash
            counts.not_compared += 1
            return
        counts.compared_requests += 1
        counts.compared_rows += rows
        counts.agreeing_rows += agreeing
        if agreeing < rows:
            counts.disagreeing_requests += 1
            if first_miss is not None:
                counts.add_example(first_miss)
