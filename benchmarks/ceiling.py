"""The ceiling for a Python Noise transport here: raw asyncio TCP + ChaCha20-Poly1305.

No libp2p: an X25519 exchange (each side sends its 32-byte public key), HKDF-SHA256 to one
ChaCha20-Poly1305 key per direction, then frames of ``u16 BE length || ciphertext`` with
at most 65519 plaintext bytes (65535 on the wire, as Noise in libp2p) and a 64-bit counter
nonce. Every byte is sealed by the sender and opened (tag checked) by the receiver with
``cryptography`` (OpenSSL), in place (``encrypt_into``/``decrypt_into``) into reused
buffers: the least Python can do per byte, hence a ceiling. Same contract as the peers in benchmarks/peers/:

    python ceiling.py listen [--listen /ip4/127.0.0.1/tcp/0]
    python ceiling.py perf /ip4/127.0.0.1/tcp/PORT --upload N --download N
    python ceiling.py conn /ip4/127.0.0.1/tcp/PORT [--count N]

``perf`` follows /perf/1.0.0 over the frames: the first frame is ``b"P" || u64 BE wanted``,
then the upload, then a TCP half-close; the server reads to EOF, sends ``wanted`` bytes and
closes; the client reads to EOF. Timed from just before the TCP connect to the last byte.
``conn`` in one process: connect, key exchange, one 32-byte encrypted ping and its echo
(``b"R" || 32 bytes``), close; repeated ``count`` times; ms per iteration (closing not timed).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import struct
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import emit, parse_args, wait_for_stop  # noqa: E402

MAX_PLAINTEXT = 65519  # 65535 - 16-byte tag: Noise's largest frame in libp2p
TAG = 16
READ_SIZE = 1 << 20
# frames handed to the socket per write: 16 x 64 KiB = ~1 MiB
BATCH_FRAMES = 16
_ZEROS = bytes(MAX_PLAINTEXT)
_LEN = struct.Struct(">H")
_NONCE = struct.Struct("<4xQ")


class Channel:
    """One direction-keyed encrypted pipe over an asyncio stream pair."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, send_key: bytes, recv_key: bytes) -> None:
        self.reader = reader
        self.writer = writer
        self.seal = ChaCha20Poly1305(send_key).encrypt
        self.seal_into = ChaCha20Poly1305(send_key).encrypt_into
        self.open = ChaCha20Poly1305(recv_key).decrypt
        self.open_into = ChaCha20Poly1305(recv_key).decrypt_into
        self.send_n = 0
        self.recv_n = 0
        self.buf = bytearray()

    def _frame(self, plaintext: bytes) -> list[bytes]:
        ct = self.seal(_NONCE.pack(self.send_n), plaintext, None)
        self.send_n += 1
        return [_LEN.pack(len(ct)), ct]

    async def send_message(self, plaintext: bytes) -> None:
        self.writer.writelines(self._frame(plaintext))
        await self.writer.drain()

    async def send_zeros(self, n: int) -> None:
        """``n`` plaintext bytes in full frames, ~1 MiB per socket write.

        Frames are sealed in place (``encrypt_into``) into one reused send buffer: no
        per-frame allocation and no join. The buffer is reused only when the transport
        holds no reference to it any more (asyncio >= 3.12 may keep a view of unsent
        data; 3.11 copies the remainder)."""
        zeros = memoryview(_ZEROS)
        transport = self.writer.transport
        buf = memoryview(bytearray(BATCH_FRAMES * (2 + MAX_PLAINTEXT + TAG)))
        while n > 0:
            off = 0
            for _ in range(BATCH_FRAMES):
                if n <= 0:
                    break
                take = min(n, MAX_PLAINTEXT)
                size = take + TAG
                _LEN.pack_into(buf, off, size)
                self.seal_into(_NONCE.pack(self.send_n), zeros[:take], None, buf[off + 2 : off + 2 + size])
                self.send_n += 1
                off += 2 + size
                n -= take
            self.writer.write(buf[:off])
            await self.writer.drain()
            if transport.get_write_buffer_size():
                buf = memoryview(bytearray(len(buf)))

    async def recv_message(self) -> bytes | None:
        """One decrypted frame; None at a clean EOF between frames."""
        while True:
            if len(self.buf) >= 2:
                size = _LEN.unpack_from(self.buf)[0]
                if len(self.buf) >= 2 + size:
                    ct = bytes(self.buf[2 : 2 + size])
                    del self.buf[: 2 + size]
                    pt = self.open(_NONCE.pack(self.recv_n), ct, None)
                    self.recv_n += 1
                    return pt
            data = await self.reader.read(READ_SIZE)
            if not data:
                if self.buf:
                    raise EOFError("EOF inside a frame")
                return None
            self.buf += data

    async def drain_to_eof(self) -> int:
        """Open (authenticate and decrypt) every frame until EOF into one reused
        plaintext buffer (the perf receiver discards the bytes); return their count."""
        total = 0
        opener = self.open_into
        out = memoryview(bytearray(MAX_PLAINTEXT))
        buf = self.buf
        while True:
            data = await self.reader.read(READ_SIZE)
            if not data:
                if len(buf):
                    raise EOFError("EOF inside a frame")
                return total
            buf += data
            mv = memoryview(buf)
            off = 0
            end = len(buf)
            while end - off >= 2:
                size = (buf[off] << 8) | buf[off + 1]
                if end - off - 2 < size:
                    break
                if size < TAG:
                    raise EOFError("frame shorter than its tag")
                total += opener(_NONCE.pack(self.recv_n), mv[off + 2 : off + 2 + size], None, out[: size - TAG])
                self.recv_n += 1
                off += 2 + size
            mv.release()
            del buf[:off]


def _derive(shared: bytes, initiator: bool) -> tuple[bytes, bytes]:
    okm = HKDF(algorithm=hashes.SHA256(), length=64, salt=None, info=b"pywasm-ceiling").derive(shared)
    k_i2r, k_r2i = okm[:32], okm[32:]
    return (k_i2r, k_r2i) if initiator else (k_r2i, k_i2r)


async def handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, initiator: bool) -> Channel:
    sk = X25519PrivateKey.generate()
    writer.write(sk.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    await writer.drain()
    peer = await reader.readexactly(32)
    send_key, recv_key = _derive(sk.exchange(X25519PublicKey.from_public_bytes(peer)), initiator)
    return Channel(reader, writer, send_key, recv_key)


def _set_nodelay(writer: asyncio.StreamWriter) -> None:
    import socket

    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        _set_nodelay(writer)
        ch = await handshake(reader, writer, initiator=False)
        first = await ch.recv_message()
        if first is None:
            return
        if first[:1] == b"R":  # ping: echo each message until EOF
            msg: bytes | None = first[1:]
            while msg is not None:
                await ch.send_message(msg)
                msg = await ch.recv_message()
        elif first[:1] == b"P":
            wanted = struct.unpack(">Q", first[1:9])[0]
            await ch.drain_to_eof()
            await ch.send_zeros(wanted)
    except (ConnectionError, EOFError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def listen_mode(args: argparse.Namespace) -> int:
    host, port = _host_port(args.listen)
    server = await asyncio.start_server(serve, host, port, limit=READ_SIZE)
    port = server.sockets[0].getsockname()[1]
    print(f"/ip4/{host}/tcp/{port}", flush=True)
    print("ready", flush=True)
    await wait_for_stop()
    server.close()
    return 0


def _host_port(ma: str) -> tuple[str, int]:
    parts = ma.strip("/").split("/")
    if len(parts) < 4 or parts[0] != "ip4" or parts[2] != "tcp":
        raise SystemExit(f"expected /ip4/A/tcp/P, got {ma}")
    return parts[1], int(parts[3])


async def perf_mode(args: argparse.Namespace) -> int:
    host, port = _host_port(args.target)
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, port, limit=READ_SIZE)
    _set_nodelay(writer)
    ch = await handshake(reader, writer, initiator=True)
    await ch.send_message(b"P" + struct.pack(">Q", args.download))
    await ch.send_zeros(args.upload)
    writer.write_eof()
    received = await ch.drain_to_eof()
    end = time.perf_counter()
    writer.close()
    ok = received == args.download
    emit({"ok": ok, "impl": "ceiling", "upload_bytes": args.upload, "download_bytes": received, "seconds": end - start})
    return 0 if ok else 1


async def conn_mode(args: argparse.Namespace) -> int:
    host, port = _host_port(args.target)
    out: list[float] = []
    for _ in range(args.count):
        t0 = time.perf_counter()
        reader, writer = await asyncio.open_connection(host, port)
        _set_nodelay(writer)
        ch = await handshake(reader, writer, initiator=True)
        payload = os.urandom(32)
        await ch.send_message(b"R" + payload)
        answer = await ch.recv_message()
        out.append((time.perf_counter() - t0) * 1000)
        if answer != payload:
            emit({"ok": False, "impl": "ceiling", "error": "ping answer differs"})
            return 1
        writer.close()
        await writer.wait_closed()
    emit({"ok": True, "impl": "ceiling", "ms": out})
    return 0


def main() -> None:
    args = parse_args()
    fn = {"listen": listen_mode, "perf": perf_mode, "conn": conn_mode}[args.mode]
    code = asyncio.run(fn(args))
    sys.stdout.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
