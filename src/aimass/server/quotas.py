"""Query budgets and output policies of API keys, as the routes apply them.

Both are defences against model extraction (many queries, each read to the last
digit, train a copy of the model): a key's *budget* caps the inputs it may send
per UTC day across predict, explain, batch prediction and generate, and its
*output policy* cuts what each prediction shows (:mod:`aimass.serving.policy`).

The budget is counted in the store (:mod:`aimass.store.usage`), so a restart
forgets nothing; only keys that carry a budget pay the write. A call that would
pass what is left is refused whole, with 429 and ``Retry-After`` until the next
UTC day, and the audit log gets one ``limit.throttled`` entry when the key starts
being refused, not one per refused call.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool

from aimass.errors import RateLimited
from aimass.server.state import ServerState
from aimass.serving.policy import OutputPolicy, parse_policy
from aimass.workspace import Principal
from aimass.workspace.limits import BudgetSpend

__all__ = ["charge", "charge_sync", "output_policy"]

BUDGET = "predict_budget"


def output_policy(principal: Principal) -> OutputPolicy:
    """The output policy of the caller's key (the full output for keys without one)."""
    return parse_policy(principal.output_policy)


async def charge(state: ServerState, principal: Principal, inputs: int) -> None:
    """Count ``inputs`` against the caller's daily budget (in a worker thread); 429 past it."""
    if principal.predict_budget is None or principal.key_id is None:
        return
    outcome = await run_in_threadpool(
        state.workspace.limits.spend,
        principal.key_id,
        inputs,
        budget=principal.predict_budget,
    )
    _check(state, principal.key_id, inputs, outcome)


def charge_sync(state: ServerState, principal: Principal, inputs: int) -> None:
    """:func:`charge` for routes that already run in a worker thread."""
    if principal.predict_budget is None or principal.key_id is None:
        return
    outcome = state.workspace.limits.spend(
        principal.key_id, inputs, budget=principal.predict_budget
    )
    _check(state, principal.key_id, inputs, outcome)


def _check(state: ServerState, key_id: str, inputs: int, outcome: BudgetSpend) -> None:
    """RateLimited (its decision audited once per day) unless the inputs were counted."""
    if not outcome.spend.accepted:
        raise _refusal(state, key_id, inputs, outcome)


def _refusal(state: ServerState, key_id: str, inputs: int, outcome: BudgetSpend) -> RateLimited:
    spend, wait = outcome.spend, outcome.retry_after
    hours = f"{wait / 3600:.1f} h" if wait >= 3600 else f"{wait} s"
    return state.throttle.refuse_quota(
        BUDGET,
        f"key:{key_id}",
        value=spend.budget,
        retry_after=wait,
        message=f"API key {key_id} has a query budget of {spend.budget:,} inputs per day "
        f"(UTC) and has {spend.left:,} left today; this call has {inputs:,} inputs, so "
        f"none of them were run. Send at most {spend.left:,} inputs, retry after 00:00 "
        f"UTC (in {hours}), or ask an admin to raise it ('aimass keys update {key_id} "
        "--predict-budget N')",
    )
