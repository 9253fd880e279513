"""The one table: every action type has its executor and its simulated effect."""

from __future__ import annotations

from typing import get_args

from reconciler.apply.table import TABLE
from reconciler.plan.actions import Action


def test_every_action_type_has_an_executor_and_an_effect() -> None:
    union = get_args(get_args(Action)[0])
    assert set(union) == set(TABLE)
    assert all(callable(row.run) and callable(row.effect) for row in TABLE.values())
