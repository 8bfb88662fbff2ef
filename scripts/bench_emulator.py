"""Measure how many events per second the emulator ingests through /events/batch.

A fresh emulator runs in its own process (in-memory state unless --db), so
its CPU is not shared with the clients' interpreter. Several client threads,
each with one keep-alive httpx.Client, post pre-encoded batches of 100
events, each event unique. The figure is events accepted (HTTP 200) divided
by the wall time of the posting phase.

    .venv/bin/python scripts/bench_emulator.py --clients 4 --seconds 10
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

import httpx

BATCH_SIZE = 100


def _serve(db_path: str | None, conn: Connection) -> None:
    from tokbill.emulator import EmulatorServer

    server = EmulatorServer(db_path=db_path).start()
    conn.send(server.api_url)
    conn.recv()  # Wait for the parent to say stop.
    server.stop()


def _bodies(client_index: int, count: int) -> list[bytes]:
    now = int(time.time())
    bodies = []
    for batch in range(count):
        events = [
            {
                "transaction_id": f"c{client_index}-b{batch}-e{index}",
                "external_subscription_id": f"sub_{client_index}",
                "code": "llm_tokens",
                "timestamp": now,
                "properties": {
                    "model": "gpt-4o",
                    "type": "input" if index % 2 else "output",
                    "tokens": 100 + index,
                },
            }
            for index in range(BATCH_SIZE)
        ]
        bodies.append(json.dumps({"events": events}).encode())
    return bodies


def _post_batches(
    api_url: str, bodies: list[bytes], deadline: float, results: list[int]
) -> None:
    headers = {"Authorization": "Bearer bench", "Content-Type": "application/json"}
    accepted = failed = 0
    with httpx.Client(base_url=api_url, headers=headers, timeout=30) as client:
        for body in bodies:
            if time.monotonic() > deadline:
                break
            response = client.post("/events/batch", content=body)
            if response.status_code == 200:
                accepted += BATCH_SIZE
            else:
                failed += 1
    results.extend([accepted, failed])


def run(
    clients: int, seconds: float, batches: int, db_path: str | None
) -> dict[str, Any]:
    """Post for at most ``seconds`` (or ``batches`` per client); return figures."""
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.Process(target=_serve, args=(db_path, child), daemon=True)
    process.start()
    api_url = parent.recv()
    try:
        bodies = [_bodies(index, batches) for index in range(clients)]
        results: list[list[int]] = [[] for _ in range(clients)]
        started = time.monotonic()
        threads = [
            threading.Thread(
                target=_post_batches,
                args=(api_url, bodies[index], started + seconds, results[index]),
            )
            for index in range(clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed_s = time.monotonic() - started
    finally:
        parent.send("stop")
        process.join(10)
    accepted = sum(result[0] for result in results)
    failed = sum(result[1] for result in results)
    return {
        "clients": clients,
        "events": accepted,
        "failed_batches": failed,
        "elapsed_s": round(elapsed_s, 2),
        "events_per_s": round(accepted / elapsed_s),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0, help="Posting time cap.")
    parser.add_argument("--batches", type=int, default=1000, help="Batches per client.")
    parser.add_argument("--db", default=None, help="SQLite file (default: memory).")
    args = parser.parse_args()
    figures = run(args.clients, args.seconds, args.batches, args.db)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
