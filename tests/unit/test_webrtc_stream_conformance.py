"""The shared stream conformance suite applied to WebRTC data-channel streams.

Data channels deliver whatever the remote sends (no flow control above SCTP), so like
mplex the receiver resets a stream past its buffer bound instead of blocking the writer.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conformance.stream_suite import MUXED_CHECKS, STREAM_CHECKS, StreamTraits, _with_timeout, streams_of

from ._webrtc_memory import memory_connection_pair

MAX_BUFFERED = 2 * 1024 * 1024
OPTS = {"max_buffered": MAX_BUFFERED, "fin_ack_timeout": 5.0, "close_timeout": 2.0}
TRAITS = StreamTraits(write_blocks=False, max_unread_bytes=MAX_BUFFERED + 2 * 1024 * 1024)


def _muxed() -> Any:
    return memory_connection_pair(**OPTS)


@pytest.mark.parametrize("check", STREAM_CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
async def test_webrtc_stream_conformance(check: Any) -> None:
    await _with_timeout(check(streams_of(_muxed), TRAITS))


@pytest.mark.parametrize("check", MUXED_CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
async def test_webrtc_muxed_conformance(check: Any) -> None:
    await _with_timeout(check(_muxed))
