"""Run as a script: record calls into a spool, say so, then wait to be killed.

python spool_writer.py API_URL SPOOL_DIR CALLS
"""

from __future__ import annotations

import sys
import time

from tokbill.ingest import MeterOptions, TokenMeter


def main() -> None:
    api_url, spool_dir, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
    meter = TokenMeter(
        api_url=api_url,
        api_key="test-key",
        spool_dir=spool_dir,
        options=MeterOptions(linger_s=0.01, senders=2),
    )
    for number in range(calls):
        meter.record(
            subscription_id="sub_killed",
            model="gpt-4",
            input_tokens=number + 1,
            output_tokens=1,
            request_id=f"killed-{number}",
        )
    sys.stdout.write("recorded\n")
    sys.stdout.flush()
    time.sleep(60)


if __name__ == "__main__":
    main()
