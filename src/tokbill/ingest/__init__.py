"""Real-time ingestion: record LLM token usage, bill it on Lago in the background.

    from tokbill import TokenMeter

    with TokenMeter(api_url="http://localhost:3000", api_key="...",
                    spool_dir="/var/lib/myapp/tokbill") as meter:
        meter.record(subscription_id="sub_1", model="gpt-4",
                     input_tokens=812, output_tokens=144,
                     request_id="chatcmpl-123")

See :class:`TokenMeter` for the guarantees.
"""

from __future__ import annotations

from tokbill.ingest._async import AsyncTokenMeter
from tokbill.ingest._hooks import DropCallback, ErrorCallback, RateLimitCallback
from tokbill.ingest._meter import TokenMeter
from tokbill.ingest._options import DEFAULT_METRIC_CODE, MeterOptions
from tokbill.ingest._report import DropReason, FlushReport, MeterStats, RateLimitInfo
from tokbill.ingest._usage import Usage, anthropic_usage, openai_usage

__all__ = [
    "DEFAULT_METRIC_CODE",
    "AsyncTokenMeter",
    "DropCallback",
    "DropReason",
    "ErrorCallback",
    "FlushReport",
    "MeterOptions",
    "MeterStats",
    "RateLimitCallback",
    "RateLimitInfo",
    "TokenMeter",
    "Usage",
    "anthropic_usage",
    "openai_usage",
]
