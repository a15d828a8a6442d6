"""aiopquic WebTransport echo server: echoes every bidi stream."""
import asyncio, sys, logging
from aiopquic.asyncio.webtransport import serve_webtransport
from aiopquic.quic.events import WebTransportNewStream, WebTransportStreamDataReceived
from aiopquic.quic.configuration import QuicConfiguration

PORT = int(sys.argv[1])
CFG = sys.argv[2] if len(sys.argv) > 2 else "default"

async def echo(session, sid):
    n = 0
    async for ev in session.receive_stream_data(sid):
        if isinstance(ev, WebTransportStreamDataReceived):
            data = bytes(ev.data)
            n += len(data)
            await session.send_stream_data_drained(sid, data, end_stream=ev.end_stream)
            if ev.end_stream:
                break
        else:
            print("stream event", ev, flush=True); break
    print(f"stream {sid} echoed {n} bytes", flush=True)

async def handler(session):
    print("session accepted", flush=True)
    tasks = set()
    async for ev in session.events():
        if isinstance(ev, WebTransportNewStream):
            if ev.stream_id % 4 == 0:  # client-initiated bidi
                t = asyncio.ensure_future(echo(session, ev.stream_id))
                tasks.add(t); t.add_done_callback(tasks.discard)
        else:
            print("session event", ev, flush=True)

async def main():
    conf = None
    srv = await serve_webtransport("127.0.0.1", PORT, "/echo", handler=handler,
                                   cert_file="cert.pem", key_file="key.pem",
                                   configuration=conf)
    print("listening", PORT, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
