"""The hot path: hand out the next request, send it, check and record its reply.

Called by :class:`~aml_client.bench.load.user.ScoringUser` for every request, so it stays lean:
the closed model defers checks and recording until the user has sent its next request, the open
model's dispatcher sends each request at its due time from a pool of sender greenlets.
"""

from __future__ import annotations

import logging
import time

import gevent
import gevent.pool
from locust.exception import CatchResponseError, StopUser

from aml_client.bench.bluegreen import assign
from aml_client.bench.load.exchange import Outcome, Sender
from aml_client.bench.load.node import EngineNode
from aml_client.bench.recording import Recording

__all__ = ["HotPath"]

log = logging.getLogger(__name__)


class HotPath(EngineNode):
    """Claim, send and record requests (the engine's per-request work)."""

    def claim(self) -> tuple[int, int] | None:
        """The next request of this node's share: ``(index, due_ns)`` (``due_ns`` 0 in the closed
        model), or ``None`` when the share is used up or the run is stopping."""
        if self.stopping or self.finished:
            return None
        quota = self.share.quota
        if quota is not None and self.claimed >= quota:
            # The share is all claimed: the node ends with its last answer, or now if its
            # share was none at all (fewer requests than load processes).
            self.stopping = True
            self._maybe_finish()
            return None
        due_ns = 0
        if self._offsets is not None:
            offset_s = next(self._offsets)
            if self.plan.duration_s is not None and offset_s >= self.plan.duration_s:
                self.stopping = True
                self._maybe_finish()
                return None
            if self._schedule_origin_ns is None:
                # The schedule starts with the first sender, not while users are being spawned.
                self._schedule_origin_ns = time.perf_counter_ns()
            due_ns = self._schedule_origin_ns + int(offset_s * 1e9)
        index = self.claimed * self.share.count + self.share.index
        self.claimed += 1
        return index, due_ns

    def send(
        self,
        sender: Sender,
        index: int,
        due_ns: int,
        recording: Recording | None = None,
        deployment: str | None = None,
        *,
        later: bool = False,
    ) -> None:
        """Send request ``index`` (due at ``due_ns`` in the open model) and record it.

        ``deployment`` pins it (a capacity step of one deployment); in a blue/green run the
        slot itself says which deployment and which body (see
        :func:`~aml_client.bench.bluegreen.assign`).
        ``later`` (the closed model): return as soon as the reply is read and timed, so the
        user sends its next request at once; the checks and the recording of every reply read
        in the meantime follow together (:meth:`_account_pending`), so neither the next sends
        nor the other replies' timings wait for them.
        """
        target = self.target
        bodies = target.bodies
        matcher = self.matcher
        group = -1
        if matcher is not None and deployment is None:
            share = self.share
            slot = assign((index - share.index) // share.count, matcher.deployments,
                          share_index=share.index, share_count=share.count)
            deployment, group = slot.deployment, slot.group
            body = slot.body % len(bodies)
        else:
            body = index % len(bodies)
        rows = target.rows[body] if target.rows is not None else None
        self.in_flight += 1
        self.recording.note_in_flight(self.in_flight)
        headers = target.request_headers(deployment)  # the current Authorization value
        if not later:
            try:
                outcome = sender.send(bodies[body], headers, rows, keep_predictions=group >= 0)
            finally:
                self.in_flight -= 1
            self._account(outcome, headers, group, deployment, body, due_ns, recording)
            return
        try:
            reply = sender.exchange(bodies[body], headers)
        finally:
            self.in_flight -= 1
        self._pending.append((sender, reply, rows, headers, group, deployment, body, due_ns))
        if len(self._pending) == 1:
            # A greenlet started from the loop's next callback: the users woken with this reply
            # first read theirs and send their next requests, then every pending reply is
            # accounted (in a greenlet: recording may block, e.g. a worker's final report).
            gevent.get_hub().loop.run_callback(gevent.spawn, self._account_pending)

    def _account_pending(self) -> None:
        """Check and record the replies :meth:`send` left for later (in arrival order)."""
        pending, self._pending = self._pending, []
        for sender, reply, rows, headers, group, deployment, body, due_ns in pending:
            try:
                outcome = reply if isinstance(reply, Outcome) else sender.finish(
                    reply, rows, keep_predictions=group >= 0)
                self._account(outcome, headers, group, deployment, body, due_ns, None)
            except Exception:  # report, never lose the others
                log.exception("could not record a reply")

    def _account(
        self, outcome: Outcome, headers: dict[str, str], group: int, deployment: str | None,
        body: int, due_ns: int, recording: Recording | None,
    ) -> None:
        if outcome.status == 401:
            self.target.unauthorized(headers)  # ask for a fresh credential
        matcher = self.matcher
        if matcher is not None and group >= 0:
            # Before complete(): the last answer may finish the run, which flushes the matcher.
            matcher.add(group, deployment or "", body, outcome.predictions,
                        self.recording.agreement, outcome.sample.body_bytes)
            outcome.predictions = None
            self.complete(outcome, due_ns, recording, deployment)
        else:
            self.complete(outcome, due_ns, recording)

    def complete(
        self,
        outcome: Outcome,
        due_ns: int = 0,
        recording: Recording | None = None,
        deployment: str | None = None,
    ) -> None:
        """Record one finished request (success or failure); ``deployment``: the one a
        blue/green run sent it to."""
        sample = outcome.sample
        latency_us = (outcome.done_ns - outcome.sent_ns) // 1000
        corrected_us = None
        if due_ns:
            corrected_us = (outcome.done_ns - due_ns) // 1000
            sample.slip_us = max(outcome.sent_ns - due_ns, 0) // 1000
        end_epoch_s = self._t0_epoch_s + (outcome.done_ns - self._t0_perf_ns) / 1e9
        (recording or self.recording).record(
            latency_us, end_epoch_s, outcome.failure, corrected_us, sample, outcome.reason,
            deployment,
        )
        if self.locust_stats:
            self._fire_locust_event(latency_us, sample.body_bytes, outcome)
        if recording is not None:  # a capacity step counts its own requests
            start_ns, end_ns = self._step_window
            if start_ns <= outcome.done_ns < end_ns:
                self._step_answered += 1
            if recording is self._step_measured:
                self._step_done += 1
                if outcome.failure is not None:
                    self._step_failed += 1
                judged_us = corrected_us if corrected_us is not None else latency_us
                for i, bound in enumerate(self._step_bounds_us):
                    if bound is not None and judged_us > bound:
                        self._step_over[i] += 1
            return
        self.completed += 1
        quota = self.share.quota
        if quota is not None and self.completed >= quota:
            self.stopping = True
        if self.stopping:
            self._maybe_finish()

    def _fire_locust_event(self, latency_us: int, length: int, outcome: Outcome) -> None:
        """Locust's own statistics and UI see every request too (approximate, rounded)."""
        error = outcome.error
        if outcome.failure is not None and error is None:
            error = CatchResponseError(outcome.failure)
        self.environment.events.request.fire(
            request_type="POST",
            name=self.request_name,
            response_time=latency_us / 1000.0,
            response_length=length,
            exception=error,
            context={},
            response=None,
            url=None,
        )

    def dispatch(self, sender: Sender) -> None:
        """Open model: send every due request of this node's share, on time, then stop."""
        if self.plan.capacity is not None:
            self._run_capacity(sender)
            raise StopUser()
        pool = gevent.pool.Pool(self.senders_per_user)
        while True:
            slot = self.claim()
            if slot is None:
                break
            index, due_ns = slot
            wait_ns = due_ns - time.perf_counter_ns()
            if wait_ns > 0:
                gevent.sleep(wait_ns / 1e9)
            # Blocks when every sender is busy: the send then slips (measured, and INVALID).
            pool.spawn(self.send, sender, index, due_ns)
        pool.join()
        raise StopUser()
