"""Template texts shared by the template and the sync tests."""

from __future__ import annotations

# The GPT-4 template of the brief, two models priced by model and type. Tests
# edit it with str.replace, one mistake or one change at a time.
GPT4 = """\
version: 1

billable_metrics:
  - code: llm_tokens
    name: LLM tokens
    aggregation_type: sum_agg
    field_name: tokens
    filters:
      model: [gpt-4, gpt-4-32k]
      type: [input, output]

plans:
  - code: gpt4
    name: GPT-4
    interval: monthly
    amount_cents: 0
    amount_currency: USD
    pay_in_advance: false
    charges:
      - billable_metric: llm_tokens
        charge_model: package
        package_size: 1000
        free_units: 0
        unmatched_amount: "0"
        price_by: [model, type]
        prices:
          gpt-4:     {input: "0.03", output: "0.06"}
          gpt-4-32k: {input: "0.06", output: "0.12"}
"""
