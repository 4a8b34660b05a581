"""Every test starts from empty tables: the list the fixtures empty names every table."""

from __future__ import annotations

from clipwatch.db.models import Base
from tests.conftest import TABLES


def test_every_table_is_emptied_between_tests() -> None:
    assert set(TABLES) == set(Base.metadata.tables)
    assert len(TABLES) == len(set(TABLES))
