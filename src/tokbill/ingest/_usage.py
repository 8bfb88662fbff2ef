"""Token usage from OpenAI and Anthropic responses, without importing the SDKs.

A response may be an SDK object (attributes) or a plain dict (keys), which is
what a recorded response, a proxy or ``response.model_dump()`` gives. The
shapes understood:

- OpenAI chat completions, and the final chunk of a stream made with
  ``stream_options={"include_usage": True}``: ``usage.prompt_tokens`` and
  ``usage.completion_tokens``, cached tokens in
  ``usage.prompt_tokens_details.cached_tokens`` (a part of the prompt);
- the OpenAI Responses API, and its ``response.completed`` stream event:
  ``usage.input_tokens`` / ``usage.output_tokens``, cached tokens in
  ``usage.input_tokens_details.cached_tokens``;
- Anthropic messages, the ``message_start`` stream event and
  ``stream.get_final_message()``: ``usage.input_tokens`` (which excludes
  cached tokens), ``usage.output_tokens``, ``cache_read_input_tokens`` and
  ``cache_creation_input_tokens``.

Reasoning tokens are part of the output count in both APIs and are billed as
output.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from tokbill.ingest._events import check_tokens

__all__ = ["Usage", "anthropic_usage", "model_alias", "openai_usage"]

# The dated snapshot suffixes providers put on a model name in responses:
# OpenAI's gpt-4-0613 and gpt-4o-2024-08-06, Anthropic's claude-...-20250514.
_SNAPSHOT_SUFFIX = re.compile(r"-(\d{4}|\d{4}-\d{2}-\d{2}|\d{8})$")


@dataclass(frozen=True)
class Usage:
    """What one LLM call consumed; ``input_tokens`` excludes cached tokens."""

    model: str | None
    response_id: str | None
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


def openai_usage(response: Any) -> Usage:
    """Usage of a chat completion, a Responses API response, or a final chunk.

    Raises:
        ValueError: the object carries no usage (e.g. a stream chunk other
            than the last, or a stream made without ``include_usage``).
    """
    if _get(response, "type") == "response.completed":
        response = _get(response, "response")
    usage = _require_usage(response, "an OpenAI response")
    if _get(usage, "prompt_tokens") is not None:
        prompt = _tokens(usage, "prompt_tokens")
        output = _tokens(usage, "completion_tokens")
        cached = _tokens(_get(usage, "prompt_tokens_details"), "cached_tokens")
    else:
        prompt = _tokens(usage, "input_tokens")
        output = _tokens(usage, "output_tokens")
        cached = _tokens(_get(usage, "input_tokens_details"), "cached_tokens")
    return Usage(
        model=_string(response, "model"),
        response_id=_string(response, "id"),
        input_tokens=max(prompt - cached, 0),
        output_tokens=output,
        cache_read_tokens=min(cached, prompt),
    )


def anthropic_usage(message: Any) -> Usage:
    """Usage of an Anthropic message, or of a ``message_start`` stream event.

    A ``message_delta`` event carries the final output count but neither the
    model nor the id: pass ``stream.get_final_message()`` instead, or give
    ``model`` to ``record_anthropic`` explicitly.

    Raises:
        ValueError: the object carries no usage.
    """
    if _get(message, "type") == "message_start":
        message = _get(message, "message")
    usage = _require_usage(message, "an Anthropic message")
    return Usage(
        model=_string(message, "model"),
        response_id=_string(message, "id"),
        input_tokens=_tokens(usage, "input_tokens"),
        output_tokens=_tokens(usage, "output_tokens"),
        cache_read_tokens=_tokens(usage, "cache_read_input_tokens"),
        cache_write_tokens=_tokens(usage, "cache_creation_input_tokens"),
    )


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _require_usage(response: Any, what: str) -> Any:
    usage = _get(response, "usage")
    if usage is None:
        raise ValueError(
            f"The object given as {what} carries no usage; pass the complete "
            "response or the final stream chunk (OpenAI streams need "
            "stream_options={'include_usage': True})."
        )
    return usage


def _tokens(usage: Any, name: str) -> int:
    value = _get(usage, name)
    return 0 if value is None else check_tokens(f"usage.{name}", value)


def _string(obj: Any, name: str) -> str | None:
    value = _get(obj, name)
    return value if isinstance(value, str) and value else None


def model_alias(model: str, priced: Collection[str]) -> str:
    """The name a template prices for ``model``, a response's model name.

    Providers answer with a dated snapshot (``gpt-4-0613``) of the model that
    was asked for (``gpt-4``), and price lists name the model. A snapshot
    whose undated name is priced becomes that name; any other name is kept,
    so an unknown model still shows as unpriced rather than being guessed.
    """
    if model in priced:
        return model
    undated = _SNAPSHOT_SUFFIX.sub("", model)
    return undated if undated in priced else model
