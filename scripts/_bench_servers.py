"""Servers for scripts/bench_ingest.py, each run in its own process.

    python scripts/_bench_servers.py sink LATENCY_S PORT_FILE
    python scripts/_bench_servers.py emulator LATENCY_S PORT_FILE

``sink`` is the smallest HTTP/1.1 keep-alive server that answers every request
200 after LATENCY_S with the body it received, to time the client alone: Lago's
batch endpoint echoes every event back (about 25 KB for 100), so clients read
an answer of that size. It counts the events it received (``GET /count``).
``emulator`` is tokbill's Lago emulator with that much latency added. Either
writes its port to PORT_FILE once it listens.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

_events = 0


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    global _events
    latency_s = float(sys.argv[2])
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = await reader.readexactly(length) if length else b""
            if head.startswith(b"GET /count"):
                answer = str(_events).encode()
            else:
                _events += body.count(b'"transaction_id"')
                answer = body or b"{}"
                if latency_s:
                    await asyncio.sleep(latency_s)
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(answer), answer)
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


async def _serve_sink(port_file: Path) -> None:
    server = await asyncio.start_server(_handle, "127.0.0.1", 0, backlog=512)
    port_file.write_text(str(server.sockets[0].getsockname()[1]))
    async with server:
        await server.serve_forever()


def _serve_emulator(latency_s: float, port_file: Path) -> None:
    from tokbill.emulator import EmulatorServer, Faults

    server = EmulatorServer(faults=Faults(latency_s=latency_s)).start()
    port_file.write_text(str(server.port))
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    kind, latency, path = sys.argv[1], float(sys.argv[2]), Path(sys.argv[3])
    if kind == "sink":
        asyncio.run(_serve_sink(path))
    else:
        _serve_emulator(latency, path)
