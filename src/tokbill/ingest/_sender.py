"""A sender: takes batches from the pipeline and gets each one resolved.

Per response (Lago answers the batch as a whole, all or nothing):

- 2xx: every event is acked;
- 422 with per-index ``error_details``: an index whose only error is
  ``transaction_id: value_already_exist`` is acked (Lago has it already, e.g.
  from a request that timed out after commit); any other index is
  quarantined; the rest of the batch is sent again at once, not counted as a
  retry;
- 422 without per-index details, and other 4xx (400, 413, ...): the batch is
  split in halves until the bad event is alone, then quarantined;
- a redirect, 401, 403, 404, 405 or 407 (the key, URL or proxy is wrong,
  not an event): sending stops for the whole meter, the events are kept, and
  this sender probes with its batch every ``auth_probe_interval_s``; any
  other answer resumes sending, and a sender that gives up on its batch
  (retry budget, closing) lifts the block too, so that some batch always
  probes while sending is suspended;
- transient failures: see ``_retry``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any, Final

import httpx
import orjson

from tokbill._errors import (
    LagoConnectionError,
    LagoError,
    LagoStatusError,
    LagoTimeoutError,
    describe_error_details,
)
from tokbill.ingest._hooks import Hooks
from tokbill.ingest._logs import LogLimiter
from tokbill.ingest._options import MeterOptions
from tokbill.ingest._pipeline import Item, Pipeline
from tokbill.ingest._records import events_of
from tokbill.ingest._report import RateLimitInfo
from tokbill.ingest._retry import DeliveryRetry, Stopped, rate_limit_wait_s
from tokbill.ingest._segments import events_in
from tokbill.lago import error_from_response, retry_after_s

__all__ = ["EVENTS_BATCH_PATH", "Sender"]


EVENTS_BATCH_PATH: Final = "/events/batch"
_LOGGED_PATH: Final = "/api/v1/events/batch"
_CONFIG_STATUSES: Final = frozenset({401, 403, 404, 405, 407})
"""Answers about the key, URL or proxy, never about an event; redirects
too (httpx does not follow them, and following would turn a POST into a
GET)."""
_DUPLICATE: Final = {"transaction_id": ["value_already_exist"]}
_UNEXPECTED_PAUSE_S: Final = 1.0

Work = list[list[Item]]
"""The batches one delivery still has to resolve, used as a stack: the halves
of a split batch and the rest of a triaged one are pushed and sent next."""


class Sender:
    """Delivers batches until the pipeline stops; ``run`` is a thread target."""

    def __init__(
        self,
        *,
        pipeline: Pipeline,
        client: httpx.Client,
        options: MeterOptions,
        hooks: Hooks,
        limiter: LogLimiter,
        stop_event: threading.Event,
    ) -> None:
        self._pipeline = pipeline
        self._client = client
        self._options = options
        self._hooks = hooks
        self._limiter = limiter
        self._stop_event = stop_event
        self._retry = DeliveryRetry(options, pipeline, stop_event, self._on_retry)
        self._sending_events = 0

    def run(self) -> None:
        """Take and deliver batches until the meter stops."""
        while (batch := self._pipeline.take_batch()) is not None:
            self._deliver(batch)

    def _deliver(self, batch: list[Item]) -> None:
        work: Work = [batch]
        while work:
            items = work.pop()
            try:
                work.extend(self._send(items))
            except Stopped:
                self._give_back([items, *work])
                return
            except LagoError as exc:
                self._lift_block()
                self._on_budget_spent(items, exc)
            except Exception:
                # Broad on purpose: a bug here must not kill the sender or
                # lose the batch; it goes back to the queue, logged (through
                # the limiter, as it may repeat for as long as the cause).
                self._limiter.log(
                    logging.ERROR,
                    "unexpected",
                    "Unexpected failure while sending a batch; it goes back to "
                    "the queue.",
                    exc_info=True,
                )
                self._lift_block()
                self._pipeline.requeue(items)
                self._stop_event.wait(_UNEXPECTED_PAUSE_S)

    def _send(self, items: list[Item]) -> Work:
        # Built once per batch and resent as is: retries carry the same ids
        # and timestamps.
        records = self._pipeline.records_of(items)
        events = [event for record in records for event in events_of(record)]
        body = orjson.dumps({"events": events})
        self._sending_events = len(events)
        response = self._retry.call(lambda: self._post(body))
        return self._handle(items, response)

    def _post(self, body: bytes) -> httpx.Response:
        # A batch taken just before another sender's 429 waits it out too.
        if self._stop_event.wait(self._pipeline.pause_remaining_s()):
            raise Stopped
        try:
            response = self._client.post(EVENTS_BATCH_PATH, content=body)
        except httpx.TransportError as exc:
            failure = _transport_error(exc)
            self._hooks.error(failure)
            raise failure from exc
        self._note_rate_limit(response)
        status = response.status_code
        if status in (408, 429) or status >= 500:
            error = error_from_response(response, "POST", _LOGGED_PATH)
            self._hooks.error(error)
            raise error
        return response

    def _handle(self, items: list[Item], response: httpx.Response) -> Work:
        status = response.status_code
        configuration = _is_configuration(status)
        if not configuration:
            self._resume(status)
        if status < 300:
            self._pipeline.acked(items)
            return []
        error = error_from_response(response, "POST", _LOGGED_PATH)
        self._hooks.error(error)
        if configuration:
            location = response.headers.get("location")
            return [self._hold_until_fixed(items, error, location)]
        if status == 422:
            return self._triage(items, error)
        return self._split_or_quarantine(items, error)

    def _resume(self, status: int) -> None:
        # Any other answer (a 422 too) shows the key and URL work.
        if self._pipeline.blocked is not None:
            self._pipeline.unblock()
            # Through the limiter: a key that flaps between backends would
            # otherwise log a line per batch.
            self._limiter.log(
                logging.WARNING,
                "resumed",
                "Lago answered %d, so the key and URL work again; sending resumed.",
                status,
            )

    def _lift_block(self) -> None:
        # This sender may be the one probing: without the lift, no batch
        # would be taken to probe again, and sending would never resume.
        if self._pipeline.blocked is not None:
            self._pipeline.unblock()

    def _hold_until_fixed(
        self, items: list[Item], error: LagoStatusError, location: str | None
    ) -> list[Item]:
        reason = str(error)
        if location and 300 <= error.status_code < 400:
            reason += f" It redirects to {location}."
        self._pipeline.block(f"{error.status_code}: {reason}")
        spooled = self._pipeline.spool is not None
        kept = "in the spool" if spooled else "in memory until close"
        self._limiter.log(
            logging.ERROR,
            f"config-{error.status_code}",
            "%s Sending is suspended and the events are kept %s; check the API "
            "key and URL. Probing again every %.3gs.",
            reason,
            kept,
            self._options.auth_probe_interval_s,
        )
        if self._stop_event.wait(self._options.auth_probe_interval_s):
            raise Stopped
        return items

    def _triage(self, items: list[Item], error: LagoStatusError) -> Work:
        per_index = _per_index(error.error_details, events_in(items))
        if per_index is None:
            return self._split_or_quarantine(items, error)
        duplicates: list[Item] = []
        rejected: list[tuple[Item, Any]] = []
        rest: list[Item] = []
        for part, detail in self._answers(items, per_index):
            if detail is None:
                rest.append(part)
            elif detail == _DUPLICATE:
                duplicates.append(part)
            else:
                rejected.append((part, detail))
        if duplicates:
            self._pipeline.acked(duplicates)
        if rejected:
            self._quarantine(rejected, error.status_code)
        return [rest] if rest else []

    def _answers(
        self, items: list[Item], per_index: dict[int, Any]
    ) -> list[tuple[Item, Any]]:
        # Lago answers per event. An item is settled whole when all its events
        # are accepted or duplicates; otherwise it is split into one item per
        # event, so that each is settled (and a rejection reported) alone.
        answers: list[tuple[Item, Any]] = []
        position = 0
        for item in items:
            count = item[3]
            details = [per_index.get(position + offset) for offset in range(count)]
            position += count
            first = details[0]
            whole = first is None or first == _DUPLICATE
            if count == 1 or (whole and details.count(first) == count):
                answers.append((item, first))
            else:
                answers.extend(zip(self._pipeline.split(item), details, strict=True))
        return answers

    def _split_or_quarantine(self, items: list[Item], error: LagoStatusError) -> Work:
        if len(items) == 1 and items[0][3] > 1:
            items = self._pipeline.split(items[0])
        if len(items) > 1:
            middle = len(items) // 2
            return [items[middle:], items[:middle]]
        detail = error.error_details or error.code or str(error)
        self._quarantine([(items[0], detail)], error.status_code)
        return []

    def _quarantine(self, rejected: list[tuple[Item, Any]], status: int) -> None:
        records = self._pipeline.records_of([item for item, _ in rejected])
        entries = [
            {
                "event": events_of(record)[0],
                "status": status,
                "error": detail,
                "quarantined_at": time.time(),
            }
            for record, (_, detail) in zip(records, rejected, strict=True)
        ]
        self._write_dead_letters(entries)
        by_reason: dict[str, list[bytes]] = {}
        for record, (_, detail) in zip(records, rejected, strict=True):
            reason = f"rejected: {describe_error_details(detail) or detail}"
            by_reason.setdefault(reason, []).append(record)
        for reason, payloads in by_reason.items():
            self._hooks.dropped(payloads, reason)
        # Counted once on_drop returned: a flush that sees them resolved
        # has seen the callback too.
        self._pipeline.quarantined([item for item, _ in rejected])
        self._limiter.log(
            logging.ERROR,
            "quarantine",
            "Lago rejected %d event(s) for good (%s); they are quarantined.",
            len(rejected),
            next(iter(by_reason)),
        )

    def _write_dead_letters(self, entries: list[dict[str, Any]]) -> None:
        spool = self._pipeline.spool
        if spool is None:
            return
        try:
            left_out = spool.dead_letter(entries)
        except OSError as exc:
            self._limiter.log(
                logging.ERROR,
                "dead-letter",
                "Could not write the dead-letter file %s: %s.",
                spool.dead_letter_path,
                exc,
            )
            return
        if left_out:
            self._limiter.log(
                logging.ERROR,
                "dead-letter-full",
                "The dead-letter file %s holds its limit of %d B; %d quarantined "
                "event(s) were left out of it (on_drop still got them).",
                spool.dead_letter_path,
                self._options.dead_letter_max_bytes,
                left_out,
            )

    def _give_back(self, work: Work) -> None:
        for items in work:
            self._pipeline.abandon(items)

    def _on_budget_spent(self, items: list[Item], exc: LagoError) -> None:
        if self._stop_event.is_set():
            self._pipeline.abandon(items)
            return
        self._limiter.log(
            logging.WARNING,
            "budget",
            "Gave up retrying a batch of %d event(s) for now (%s); it goes to "
            "the back of the queue.",
            events_in(items),
            exc,
        )
        self._pipeline.requeue(items)

    def _on_retry(self, exc: BaseException, delay_s: float) -> None:
        self._pipeline.count_retry(self._sending_events)
        kind = getattr(exc, "status_code", type(exc).__name__)
        self._limiter.log(
            logging.WARNING, f"retry-{kind}", "%s Retrying in %.2fs.", exc, delay_s
        )

    def _note_rate_limit(self, response: httpx.Response) -> None:
        headers = response.headers
        is_429 = response.status_code == 429
        if not is_429 and "x-ratelimit-remaining" not in headers:
            return
        wait_s: float | None = None
        if is_429:
            hinted_s = retry_after_s(headers)
            if hinted_s is not None:
                wait_s = rate_limit_wait_s(hinted_s, self._options)
                self._pipeline.pause_for(wait_s)
        self._hooks.rate_limited(
            RateLimitInfo(
                limit=_int_or_none(headers.get("x-ratelimit-limit")),
                remaining=_int_or_none(headers.get("x-ratelimit-remaining")),
                reset_s=_float_or_none(headers.get("x-ratelimit-reset")),
                wait_s=wait_s,
            )
        )


def _transport_error(exc: httpx.TransportError) -> LagoConnectionError:
    if isinstance(exc, httpx.TimeoutException):
        return LagoTimeoutError(
            f"POST {_LOGGED_PATH} timed out ({type(exc).__name__}); the batch "
            "is sent again with the same ids.",
            method="POST",
            path=_LOGGED_PATH,
        )
    return LagoConnectionError(
        f"POST {_LOGGED_PATH} got no response: {exc or type(exc).__name__}.",
        method="POST",
        path=_LOGGED_PATH,
        request_sent=not isinstance(exc, httpx.ConnectError),
    )


def _is_configuration(status: int) -> bool:
    return 300 <= status < 400 or status in _CONFIG_STATUSES


def _per_index(details: Any, size: int) -> dict[int, Any] | None:
    if not isinstance(details, Mapping) or not details:
        return None
    keys = [str(key) for key in details]
    if not all(key.isdigit() and int(key) < size for key in keys):
        return None
    # An index answered with null names no error: trusting it would resend
    # the whole batch at once, forever.
    found = {int(key): value for key, value in details.items() if value is not None}
    return found or None


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _float_or_none(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
