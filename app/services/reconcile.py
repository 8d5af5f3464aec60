"""Reconciliation: a day's payouts in our ledger against the gateway's own records.

Each payout of ours is fetched from the gateway (state and amount must agree, by `AGREES`), and
the gateway's list of the day is searched for payouts no transaction of ours asked for. The
report, with the day's top-ups counted by state, is stored under `reconcile:<date>`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import Any

from app.bootstrap import Services
from gateway_clients.base import GatewayUnavailable, PayoutStatus
from storage.models import TransactionKind, TransactionState

# what the gateway may say of a payout in each of our states without it being a mismatch
AGREES: dict[TransactionState, set[PayoutStatus | None]] = {
    TransactionState.PENDING: {None, PayoutStatus.PROCESSING},
    TransactionState.PROCESSING: {PayoutStatus.PROCESSING},
    TransactionState.SUCCESS: {PayoutStatus.PROCESSED},
    TransactionState.FAILED: {None, PayoutStatus.FAILED, PayoutStatus.REVERSED},
}
MAX_PER_DAY = 100_000


def _unknown_to_us(svc: Services, ours: set[str], since: int, until: int) -> list[dict[str, Any]]:
    """Payouts the gateway made in the window that no transaction of ours asked for."""
    try:
        theirs = svc.gateway.list_payouts(since, until)
    except GatewayUnavailable as exc:
        return [{"reference": "*", "problem": f"gateway list not checked: {exc}"}]
    if theirs is None:  # this rail cannot list: only our side was checked
        return []
    strangers = [p for p in theirs if p.reference not in ours]
    known = svc.store.read(
        lambda uow: {p.reference: uow.get_transaction(p.reference) for p in strangers}
    )
    missing = []
    for payout in strangers:
        txn = known[payout.reference]
        if txn is None or txn.kind is not TransactionKind.PAYOUT:
            missing.append(
                {
                    "reference": payout.reference or "-",
                    "problem": "missing in ledger",
                    "theirs": payout.status.value,
                    "amount": payout.amount,
                    "provider_id": payout.provider_id,
                }
            )
    return missing


def reconcile_day(
    svc: Services, day: date, progress: Callable[[int, int], None] = lambda done, total: None
) -> dict[str, Any]:
    """Check every payout made on a local day; store and return the report."""
    start = datetime.combine(day, time.min, svc.tz)
    since, until = start.timestamp(), (start + timedelta(days=1)).timestamp()
    txns = svc.store.read(
        lambda uow: uow.search_transactions(limit=MAX_PER_DAY, since=since, until=until)
    )
    payouts = [t for t in txns if t.kind is TransactionKind.PAYOUT]
    top_ups = [t for t in txns if t.kind is TransactionKind.TOP_UP]
    mismatches: list[dict[str, Any]] = []
    for done, txn in enumerate(payouts, 1):
        try:
            theirs = svc.gateway.fetch_payout(txn.reference)
        except GatewayUnavailable as exc:
            mismatches.append({"reference": txn.reference, "problem": f"not checked: {exc}"})
            continue
        finally:
            progress(done, len(payouts))
        status = theirs.status if theirs else None
        if status not in AGREES.get(txn.state, set()):
            mismatches.append(
                {
                    "reference": txn.reference,
                    "problem": "state differs",
                    "ours": txn.state.value,
                    "theirs": status.value if status else "missing",
                }
            )
        elif theirs is not None and theirs.amount != txn.amount:
            mismatches.append(
                {
                    "reference": txn.reference,
                    "problem": "amount differs",
                    "ours": txn.amount,
                    "theirs": theirs.amount,
                }
            )
    mismatches += _unknown_to_us(svc, {t.reference for t in payouts}, int(since), int(until))
    report = {
        "date": day.isoformat(),
        "gateway": svc.gateway.name,
        "checked": len(payouts),
        "top_ups": {s.value: sum(1 for t in top_ups if t.state is s) for s in TransactionState},
        "mismatches": mismatches,
        "at": svc.clock.now(),
    }
    body = json.dumps(report, sort_keys=True).encode()
    svc.store.atomic(lambda uow: uow.set_meta(f"reconcile:{day.isoformat()}", body))
    return report
