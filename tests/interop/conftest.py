"""Fixtures for interop tests against real js-libp2p, go-libp2p (kubo) and py-libp2p peers.

Peers are installed by scripts/setup.sh. A missing install makes the tests fail with a
message naming that script: interop tests are never skipped silently.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop.harness import PeerSet

_HERE = Path(__file__).resolve().parent


def mark_items_under(directory: Path, marker: pytest.MarkDecorator, items: list[pytest.Item]) -> None:
    """Add ``marker`` to every collected test that lives below ``directory``."""
    for item in items:
        if directory in Path(str(item.fspath)).resolve().parents:
            item.add_marker(marker)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mark_items_under(_HERE, pytest.mark.interop, items)


@pytest.fixture
def peers() -> Iterator[PeerSet]:
    """Starts peers for one test; stops exactly those PIDs afterwards, pass or fail."""
    ps = PeerSet()
    try:
        yield ps
    finally:
        ps.close()
