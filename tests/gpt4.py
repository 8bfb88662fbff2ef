"""The shipped GPT-4 template on an emulator, as the end-to-end tests need it."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from tokbill.cli import main
from tokbill.lago import LagoClient

GPT4_TEMPLATE = Path(__file__).parents[1] / "templates" / "gpt4.yaml"
KEY = "test-key"


def apply_gpt4(api_url: str) -> None:
    """Run ``tokbill-sync apply templates/gpt4.yaml --yes`` against ``api_url``."""
    options = ["--yes", "--api-url", api_url, "--api-key", KEY]
    result = CliRunner().invoke(main, ["apply", str(GPT4_TEMPLATE), *options])
    assert result.exit_code == 0, result.stderr


def subscribe_to_gpt4(api: LagoClient, customer: str, subscription: str) -> None:
    """Put ``customer`` (created if missing) on plan gpt4 as ``subscription``."""
    body = {
        "external_customer_id": customer,
        "plan_code": "gpt4",
        "external_id": subscription,
    }
    api.post("/subscriptions", {"subscription": body})
