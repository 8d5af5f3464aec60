"""The soak: a few minutes of realistic, hostile traffic against the real service on 127.0.0.1.

`make soak` (or `python -m soak --help`) starts gunicorn (gunicorn.conf.py, 2 workers) and one
worker on a free loopback port over a fresh data directory, registers users with balances and
devices, then for a bounded time sends valid encrypted PAY (to wallets and to the sandbox's
`success@razorpay` / `failure@razorpay`), BAL and STS SMS through the Tasker and Twilio routes,
delivers a share of them twice, makes the sandbox gateway fail a share of its calls (some after
paying) and SIGKILLs the worker at random moments. Then it stops sending, waits (bounded) for every
transaction to settle and checks, from the store, the sandbox's book and what the senders saw:

- every transaction is final (SUCCESS or FAILED), and no payout job is dead;
- money is conserved: wallets + money in flight + money paid out = what was credited, the ledger
  sums to zero, no wallet is negative;
- each transaction's ledger entries match its state (a PAY instruction moved money at most once)
  and each one came from exactly one processed SMS frame;
- the sandbox's book agrees with ours, payout by payout;
- every delivery of the same SMS got the same reply, and no sender saw a 4xx, a 5xx or no answer.

It lives in its own package, apart from `bench/` (which times things and asserts nothing) and
`scripts/` (operator tools): it is a test harness a developer runs, that also runs briefly in
`make test` (tests/e2e/test_soak_smoke.py). Traffic goes only to 127.0.0.1.
"""
