"""Plain aioquic 1.7.2 WebTransport echo server, library defaults (asyncio serve)."""
import asyncio, sys
from aioquic.asyncio import serve, QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import HeadersReceived, WebTransportStreamDataReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ProtocolNegotiated, StreamReset

PORT = int(sys.argv[1])

class Proto(QuicConnectionProtocol):
    def __init__(self, *a, **k):
        super().__init__(*a, **k); self._h3 = None; self._n = {}
    def quic_event_received(self, event):
        if isinstance(event, ProtocolNegotiated):
            self._h3 = H3Connection(self._quic, enable_webtransport=True)
        if self._h3 is None:
            return
        for ev in self._h3.handle_event(event):
            if isinstance(ev, HeadersReceived):
                h = dict(ev.headers)
                if h.get(b":method") == b"CONNECT" and h.get(b":protocol") == b"webtransport":
                    self._h3.send_headers(ev.stream_id, [(b":status", b"200"), (b"sec-webtransport-http3-draft", b"draft02")])
                    print("session accepted", flush=True)
                else:
                    self._h3.send_headers(ev.stream_id, [(b":status", b"404")], end_stream=True)
            elif isinstance(ev, WebTransportStreamDataReceived):
                sid = ev.stream_id
                self._n[sid] = self._n.get(sid, 0) + len(ev.data)
                if sid % 4 == 0:
                    self._quic.send_stream_data(sid, ev.data, end_stream=ev.stream_ended)
                if ev.stream_ended:
                    print(f"stream {sid} echoed {self._n[sid]} bytes", flush=True)
        self.transmit()

async def main():
    conf = QuicConfiguration(alpn_protocols=H3_ALPN, is_client=False, max_datagram_frame_size=65536)
    conf.load_cert_chain("cert.pem", "key.pem")
    await serve("127.0.0.1", PORT, configuration=conf, create_protocol=Proto)
    print("listening", PORT, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
