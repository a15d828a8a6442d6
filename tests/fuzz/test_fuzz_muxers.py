"""Property tests: arbitrary bytes into the yamux and mplex cores.

Only PywasmError subclasses may escape, whatever the input and however it is split;
we also drive the commands afterwards (consume, send, reset) to reach more states.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pywasm.errors import PywasmError
from pywasm.protocols import mplex as m
from pywasm.protocols import yamux as y


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, prev = [], 0
    for p in points + [len(data)]:
        out.append(data[prev:p])
        prev = p
    return out


yamux_frames = st.lists(
    st.builds(
        lambda typ, flags, sid, length, payload: y.HEADER.pack(0, typ, flags, sid, length) + payload,
        st.integers(0, 4),
        st.integers(0, 15),
        st.sampled_from([0, 1, 2, 3, 4, 5, 0xFFFFFFFF]),
        st.one_of(st.integers(0, 40), st.sampled_from([y.INITIAL_WINDOW, 0xFFFFFFFF])),
        st.binary(max_size=40),
    ),
    max_size=20,
).map(b"".join)

mplex_frames = st.lists(
    st.builds(
        lambda sid, flag, payload: m.encode_message(sid, flag, payload),
        st.integers(0, 5),
        st.integers(0, 7),
        st.binary(max_size=30),
    ),
    max_size=20,
).map(b"".join)


def _drive_yamux(session: y.YamuxSession, pieces: list[bytes]) -> None:
    try:
        for piece in pieces:
            session.receive_data(piece)
            for ev in session.next_events():
                if isinstance(ev, y.DataReceived):
                    session.consume(ev.stream_id, len(ev.data))
                elif isinstance(ev, y.StreamOpened):
                    session.send_data(ev.stream_id, b"x" * 10)
        session.data_to_send()
    except PywasmError:
        pass


def _drive_mplex(session: m.MplexSession, pieces: list[bytes]) -> None:
    try:
        for piece in pieces:
            session.receive_data(piece)
            for ev in session.next_events():
                if isinstance(ev, m.DataReceived):
                    session.consume(ev.key, len(ev.data))
                elif isinstance(ev, m.StreamOpened):
                    session.send_data(ev.key, b"x")
        session.data_to_send()
    except PywasmError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), yamux_frames), st.lists(st.integers(0, 400), max_size=8), st.booleans())
def test_yamux_only_pywasm_errors(data: bytes, cuts: list[int], is_client: bool) -> None:
    session = y.YamuxSession(is_client, y.YamuxConfig(max_inbound_streams=3))
    if is_client:
        session.open_stream()
    _drive_yamux(session, _chunks(data, cuts))


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), mplex_frames), st.lists(st.integers(0, 400), max_size=8))
def test_mplex_only_pywasm_errors(data: bytes, cuts: list[int]) -> None:
    session = m.MplexSession(m.MplexConfig(max_inbound_streams=3, max_stream_buffer=50))
    session.open_stream()
    _drive_mplex(session, _chunks(data, cuts))


@settings(max_examples=100, deadline=None)
@given(yamux_frames, st.lists(st.integers(0, 400), max_size=8))
def test_yamux_split_does_not_matter(data: bytes, cuts: list[int]) -> None:
    """Feeding in pieces gives the same events and output as feeding at once."""

    def run(pieces: list[bytes]) -> tuple[list[str], bytes, bool]:
        s = y.YamuxSession(False)
        events: list[str] = []
        failed = False
        try:
            for p in pieces:
                s.receive_data(p)
                events += [repr(e) for e in s.next_events()]
        except PywasmError:
            failed = True
            events += [repr(e) for e in s.next_events()]
        # merge data events so the split of payloads does not matter
        return _merge(events), s.data_to_send(), failed

    assert run([data]) == run(_chunks(data, cuts))


def _merge(events: list[str]) -> list[str]:
    out: list[str] = []
    for e in events:
        if e.startswith("DataReceived") and out and out[-1].split(",")[0] == e.split(",")[0]:
            prev = int(out[-1].split(", ")[1].split()[0])
            cur = int(e.split(", ")[1].split()[0])
            out[-1] = f"{e.split(',')[0]}, {prev + cur} bytes)"
        else:
            out.append(e)
    return out
