"""TokenMeter: record LLM token usage; a background pipeline bills it on Lago."""

from __future__ import annotations

import atexit
import logging
import os
import weakref
from collections.abc import Collection, Mapping
from datetime import datetime
from pathlib import Path
from time import time as _now
from typing import Any

import httpx
from typing_extensions import Self

from tokbill._errors import ConfigurationError
from tokbill._secrets import ApiKey
from tokbill._settings import (
    api_key_for,
    key_from_env,
    resolve_api_url,
    url_from_env,
)
from tokbill.ingest._events import (
    EventShape,
    check_id,
    check_properties,
    check_tokens,
    event_time,
)
from tokbill.ingest._hooks import DropCallback, ErrorCallback, Hooks, RateLimitCallback
from tokbill.ingest._logs import LogLimiter
from tokbill.ingest._options import DEFAULT_METRIC_CODE, MeterOptions
from tokbill.ingest._records import CallEncoder, events_of
from tokbill.ingest._report import FlushReport, MeterStats
from tokbill.ingest._runtime import Connection, Runtime
from tokbill.ingest._usage import (
    Usage,
    anthropic_usage,
    model_alias,
    openai_usage,
)

__all__ = ["MeterBase", "TokenMeter"]

logger = logging.getLogger(__name__)

SPOOL_DIR_ENV = "TOKBILL_SPOOL_DIR"

_live_meters: weakref.WeakSet[MeterBase] = weakref.WeakSet()
_started_meters: set[MeterBase] = set()
"""Started, unclosed meters, held so that the close at interpreter exit
reaches a meter its user dropped: its threads and events live on anyway."""


class MeterBase:
    """What the sync and async meters share: construction and ``record``.

    Guarantees of ``record`` and its variants:

    - no network I/O, no system call and no wait on Lago: the call is
      encoded as one record (see ``_records``), copied into the spool's
      memory map if there is one, and queued in memory, under one short
      lock; a sender is woken only when the call completes a batch;
    - it raises only for invalid arguments (``TypeError``/``ValueError``,
      before anything is recorded), never because of Lago, the buffer or the
      spool: an event that cannot be kept is counted in ``stats().dropped``
      and handed to ``on_drop``;
    - a call with a ``request_id`` always produces the same transaction ids
      (``"<request_id>:<type>"``), so recording a retried request twice bills
      it once; request ids must be unique per subscription.
    """

    def __init__(
        self,
        *,
        api_url: str,
        api_key: str | None = None,
        metric_code: str = DEFAULT_METRIC_CODE,
        spool_dir: str | os.PathLike[str] | None = None,
        field_name: str = "tokens",
        model_key: str = "model",
        type_key: str = "type",
        known_models: Collection[str] | None = None,
        known_types: Collection[str] | None = None,
        options: MeterOptions | None = None,
        on_drop: DropCallback | None = None,
        on_error: ErrorCallback | None = None,
        on_rate_limit: RateLimitCallback | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._shape = EventShape(
            code=metric_code,
            field_name=field_name,
            model_key=model_key,
            type_key=type_key,
            known_models=None if known_models is None else frozenset(known_models),
            known_types=None if known_types is None else frozenset(known_types),
        )
        self._options = options or MeterOptions()
        self._encoder = CallEncoder(self._shape, self._options.max_event_bytes)
        self._checks_prices = known_models is not None or known_types is not None
        self._connection = Connection(
            resolve_api_url(api_url),
            ApiKey(api_key_for(api_url, api_key) or ""),
            transport,
        )
        self._spool_dir = _checked_spool_dir(spool_dir)
        self._callbacks = (on_drop, on_error, on_rate_limit)
        self._closed = False
        self._runtime = self._new_runtime()
        _live_meters.add(self)

    @classmethod
    def from_env(cls, **kwargs: Any) -> Self:
        """A meter configured by ``LAGO_API_URL``, ``LAGO_API_KEY`` and
        ``TOKBILL_SPOOL_DIR``; keyword arguments override them.

        An ``api_url`` or ``api_key`` passed as None or empty counts as not
        given; ``spool_dir=None`` turns the spool off whatever the
        environment says.

        Raises:
            ConfigurationError: ``LAGO_API_URL`` is unset and no api_url given.
        """
        if not kwargs.get("api_url"):
            kwargs["api_url"] = url_from_env()
        if not kwargs.get("api_key"):
            kwargs["api_key"] = key_from_env()
        if os.environ.get(SPOOL_DIR_ENV):
            kwargs.setdefault("spool_dir", os.environ[SPOOL_DIR_ENV])
        return cls(**kwargs)

    @classmethod
    def from_template(
        cls,
        path: str | os.PathLike[str],
        *,
        metric_code: str | None = None,
        model_key: str | None = None,
        type_key: str | None = None,
        **kwargs: Any,
    ) -> Self:
        """A meter for the metric a pricing template charges for.

        The metric's ``field_name`` carries the token count; its filter keys
        hold the model (``model``, or the key given) and the type (``type``,
        or the key whose values include ``input`` and ``output``). Models and
        types outside the declared filter values are sent, and counted in
        ``stats().unpriced`` and logged once per value.

        Raises:
            TemplateError: the template is invalid.
            ConfigurationError: the metric cannot be determined.
        """
        from tokbill.ingest._shape import shape_from_template

        shape = shape_from_template(
            path, metric_code=metric_code, model_key=model_key, type_key=type_key
        )
        return cls(
            metric_code=shape.code,
            field_name=shape.field_name,
            model_key=shape.model_key,
            type_key=shape.type_key,
            known_models=shape.known_models,
            known_types=shape.known_types,
            **kwargs,
        )

    @property
    def api_url(self) -> str:
        """The normalised URL events go to (it ends with ``/api/v1``)."""
        return self._connection.api_url

    @property
    def metric_code(self) -> str:
        """The billable metric code every event carries."""
        return self._shape.code

    def record(
        self,
        *,
        subscription_id: str,
        model: str,
        input_tokens: int,
        output_tokens: int,
        request_id: str | None = None,
        timestamp: float | datetime | None = None,
        properties: Mapping[str, str | int | float] | None = None,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> None:
        """Record one LLM call: one event per non-zero token type.

        ``timestamp`` defaults to now, fixed here and resent unchanged on
        every retry. ``properties`` are added to each event. Cached prompt
        tokens follow ``MeterOptions.cache_tokens``. A call with no tokens at
        all records nothing.

        Raises:
            TypeError, ValueError: an argument is invalid; nothing is recorded.
        """
        now = _now()
        counts = self._token_counts(
            input_tokens, output_tokens, cache_read_tokens, cache_write_tokens
        )
        # Plain str arguments are checked inline: record runs on every LLM
        # call, and the full checks are only needed to word an error.
        if type(subscription_id) is not str or not subscription_id:
            check_id("subscription_id", subscription_id)
        if type(model) is not str or not model:
            check_id("model", model)
        if request_id is not None and (type(request_id) is not str or not request_id):
            check_id("request_id", request_id)
        when = now if timestamp is None else event_time(timestamp, now)
        extra = None
        if properties is not None:
            extra = check_properties(properties, self._shape.reserved_keys) or None
        if not counts:
            return
        runtime = self._runtime
        record = self._encoder.encode(
            runtime.ids.next_id() if request_id is None else request_id,
            subscription_id,
            when,
            model,
            counts,
            extra,
        )
        if self._checks_prices:
            self._check_priced(model, counts)
        if not runtime.started:
            self._start()
        runtime.pipeline.submit(record, len(counts))

    def record_openai(
        self,
        response: Any,
        *,
        subscription_id: str,
        request_id: str | None = None,
        model: str | None = None,
        timestamp: float | datetime | None = None,
        properties: Mapping[str, str | int | float] | None = None,
    ) -> None:
        """Record an OpenAI chat completion, Responses API response or final
        stream chunk (object or dict). The request id defaults to the
        response's ``id``, the model to its ``model``, undated when the
        template prices only the undated name (``gpt-4-0613`` is ``gpt-4``).

        Raises:
            ValueError: the response carries no usage, or no model is known.
        """
        self._record_usage(
            openai_usage(response),
            subscription_id=subscription_id,
            request_id=request_id,
            model=model,
            timestamp=timestamp,
            properties=properties,
        )

    def record_anthropic(
        self,
        message: Any,
        *,
        subscription_id: str,
        request_id: str | None = None,
        model: str | None = None,
        timestamp: float | datetime | None = None,
        properties: Mapping[str, str | int | float] | None = None,
    ) -> None:
        """Record an Anthropic message (object or dict), e.g. the result of
        ``messages.create`` or ``stream.get_final_message()``. The model is
        undated as for :meth:`record_openai`.

        Raises:
            ValueError: the message carries no usage, or no model is known.
        """
        self._record_usage(
            anthropic_usage(message),
            subscription_id=subscription_id,
            request_id=request_id,
            model=model,
            timestamp=timestamp,
            properties=properties,
        )

    def stats(self) -> MeterStats:
        """A consistent snapshot of the counters (see :class:`MeterStats`)."""
        return self._runtime.stats()

    def pending_events(self, subscription_id: str) -> list[dict[str, Any]]:
        """The Lago event bodies recorded for ``subscription_id`` that Lago
        has not acknowledged: buffered, in flight, or waiting in the spool.

        This is what ``UsageClient.estimate`` adds to Lago's figure. It is a
        snapshot: an event acknowledged meanwhile may still be listed and
        one recorded meanwhile may be missing, but none is listed twice.
        Events recovered from an earlier process's spool are included once
        the meter has started (its first ``record``, ``flush`` or ``close``).

        Cost: linear in the pending events of every subscription. ``record``
        waits only while the in-memory buffer is copied (5 ns per pending
        call measured, so 0.5 ms for a full buffer of 100,000); then every
        pending record is decoded, and events that wait on disk only are
        read from the spool. Meant for occasional calls, not per request.
        """
        records = self._runtime.pipeline.pending_records()
        return [
            event
            for record in records
            for event in events_of(record)
            if event.get("external_subscription_id") == subscription_id
        ]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(api_url={self.api_url!r}, "
            f"api_key={self._connection.api_key!r}, "
            f"metric_code={self.metric_code!r}, spool_dir={self._spool_dir!r})"
        )

    def _start(self) -> None:
        self._runtime.start()
        if self._runtime.started:
            _started_meters.add(self)

    def _flush_sync(self, timeout_s: float) -> FlushReport:
        self._start()
        return self._runtime.flush(timeout_s)

    def _close_sync(self, timeout_s: float) -> FlushReport:
        self._closed = True
        _live_meters.discard(self)
        _started_meters.discard(self)
        return self._runtime.close(timeout_s)

    def _record_usage(
        self,
        usage: Usage,
        *,
        subscription_id: str,
        request_id: str | None,
        model: str | None,
        timestamp: float | datetime | None,
        properties: Mapping[str, str | int | float] | None,
    ) -> None:
        if model is None:
            model = self._response_model(usage)
        self.record(
            subscription_id=subscription_id,
            model=model,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            request_id=request_id or usage.response_id,
            timestamp=timestamp,
            properties=properties,
        )

    def _response_model(self, usage: Usage) -> str:
        if usage.model is None:
            raise ValueError(
                "The response names no model; pass model= to say which one."
            )
        known = self._shape.known_models
        return usage.model if known is None else model_alias(usage.model, known)

    def _token_counts(
        self, input_tokens: int, output_tokens: int, cache_read: int, cache_write: int
    ) -> list[tuple[str, int]]:
        """The non-zero ``(type, tokens)`` pairs of a call, checked.

        Raises:
            TypeError, ValueError: a count is not a non-negative integer.
        """
        if type(input_tokens) is not int or input_tokens < 0:
            input_tokens = check_tokens("input_tokens", input_tokens)
        if type(output_tokens) is not int or output_tokens < 0:
            output_tokens = check_tokens("output_tokens", output_tokens)
        no_cache = (
            type(cache_read) is int
            and type(cache_write) is int
            and not (cache_read or cache_write)
        )
        if not no_cache:
            pairs = self._cache_pairs(
                input_tokens,
                output_tokens,
                check_tokens("cache_read_tokens", cache_read),
                check_tokens("cache_write_tokens", cache_write),
            )
        elif input_tokens and output_tokens:
            # The usual call: nothing to leave out, so no filtering pass.
            return [("input", input_tokens), ("output", output_tokens)]
        else:
            pairs = [("input", input_tokens), ("output", output_tokens)]
        return [(kind, tokens) for kind, tokens in pairs if tokens]

    def _cache_pairs(
        self, input_tokens: int, output_tokens: int, cache_read: int, cache_write: int
    ) -> list[tuple[str, int]]:
        if self._options.cache_tokens == "input":
            return [
                ("input", input_tokens + cache_read + cache_write),
                ("output", output_tokens),
            ]
        return [
            ("input", input_tokens),
            ("output", output_tokens),
            ("cache_read", cache_read),
            ("cache_write", cache_write),
        ]

    def _check_priced(self, model: str, counts: list[tuple[str, int]]) -> None:
        shape = self._shape
        if shape.known_models is not None and model not in shape.known_models:
            self._count_unpriced(f"model={model}", len(counts))
        if shape.known_types is not None:
            for kind, _ in counts:
                if kind not in shape.known_types:
                    self._count_unpriced(f"type={kind}", 1)

    def _count_unpriced(self, value: str, events: int) -> None:
        # Decided under the pipeline's lock, so that two threads recording
        # the same new value never both report it.
        if self._runtime.pipeline.count_unpriced(value, events):
            logger.warning(
                "Events with %s match no filter value of the metric %s; they are "
                "sent and counted in stats().unpriced.",
                value,
                self.metric_code,
            )

    def _new_runtime(self) -> Runtime:
        on_drop, on_error, on_rate_limit = self._callbacks

        def make_hooks(limiter: LogLimiter) -> Hooks:
            return Hooks(
                on_drop=on_drop,
                on_error=on_error,
                on_rate_limit=on_rate_limit,
                limiter=limiter,
            )

        return Runtime(
            options=self._options,
            connection=self._connection,
            spool_dir=self._spool_dir,
            make_hooks=make_hooks,
            limiter=LogLimiter(logger, self._options.log_interval_s),
        )

    def _reset_in_child(self) -> None:
        self._runtime.forget_after_fork()
        self._runtime = self._new_runtime()
        if self._closed:
            self._runtime.pipeline.close_admission()

    def _close_at_exit(self) -> None:
        report = self._close_sync(self._options.atexit_timeout_s)
        if report.pending:
            where = "kept in the spool" if self._spool_dir else "lost"
            logger.warning(
                "At exit, %d event(s) were not yet delivered; they are %s.",
                report.pending,
                where,
            )


class TokenMeter(MeterBase):
    """Records LLM token usage and bills it on Lago in the background.

    Events go to ``POST /api/v1/events/batch`` in batches of at most 100
    (and ``max_batch_bytes``), sent when full or after ``linger_s`` by
    ``senders`` threads sharing one keep-alive connection pool. Threads start
    on first use. With ``spool_dir`` every recorded event survives ``kill
    -9`` and is sent by the next meter on that directory; without it, memory
    is bounded by ``max_buffered_events`` and overflow is counted as dropped.
    A spool that cannot be opened at first use is logged as an ERROR and the
    meter runs as if it had none.

    ``flush`` and ``close`` return by their deadline, whatever Lago does.
    """

    def flush(self, timeout_s: float = 5.0) -> FlushReport:
        """Send everything recorded so far; wait at most ``timeout_s``.

        ``report.complete`` tells whether as many events were resolved as
        had been recorded when the call began. While other threads keep
        recording, events recorded meanwhile count too, so an older event
        may still be pending; ``close`` waits until nothing is.
        """
        return self._flush_sync(timeout_s)

    def close(self, timeout_s: float = 5.0) -> FlushReport:
        """Flush, then stop; later calls return the current report at once.

        What is still unsent at the deadline stays in the spool for the next
        meter, or, without a spool, is dropped as ``shutdown`` (counted, and
        given to ``on_drop``); a batch in flight stays pending.
        """
        return self._close_sync(timeout_s)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _checked_spool_dir(spool_dir: str | os.PathLike[str] | None) -> Path | None:
    if spool_dir is None:
        return None
    path = Path(spool_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(
            f"The spool directory {str(path)!r} cannot be created: {exc}."
        ) from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigurationError(
            f"The spool directory {str(path)!r} is not writable by this process."
        )
    return path


def _close_all_at_exit() -> None:
    for meter in list(_live_meters):
        meter._close_at_exit()


def _reset_all_in_child() -> None:
    for meter in list(_live_meters):
        meter._reset_in_child()


atexit.register(_close_all_at_exit)
os.register_at_fork(after_in_child=_reset_all_in_child)
