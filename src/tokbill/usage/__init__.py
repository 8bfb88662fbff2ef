"""Current usage, spend and budgets from Lago, cached for many callers.

    from tokbill.usage import UsageClient

    usage = UsageClient.from_env(ttl_s=5.0)
    u = usage.current(customer_id="cus_1", subscription_id="sub_1")
    u.total_amount                      # Decimal("0.27"), currency units
    u.by("model", "type")[("gpt-4", "input")].units
    usage.check_budget("cus_1", "sub_1", limit=Decimal("50")).exceeded

    # Lago's figure plus what a meter recorded but Lago has not seen yet:
    estimate = usage.estimate("cus_1", "sub_1", meter=meter, templates=templates)
    estimate.amount, estimate.pending_amount    # total, and the estimated part

Names starting with ``_`` are private.
"""

from __future__ import annotations

from tokbill.usage._async_client import AsyncUsageClient
from tokbill.usage._budget import BudgetStatus
from tokbill.usage._client import UsageClient
from tokbill.usage._errors import (
    CustomerNotFoundError,
    ForeignSubscriptionError,
    SubscriptionNotActiveError,
    UsageUnavailableError,
)
from tokbill.usage._estimate import EstimatedLine, PendingEvents, UsageEstimate
from tokbill.usage._model import Subscription, Usage, UsageLine

__all__ = [
    "AsyncUsageClient",
    "BudgetStatus",
    "CustomerNotFoundError",
    "EstimatedLine",
    "ForeignSubscriptionError",
    "PendingEvents",
    "Subscription",
    "SubscriptionNotActiveError",
    "Usage",
    "UsageClient",
    "UsageEstimate",
    "UsageLine",
    "UsageUnavailableError",
]
