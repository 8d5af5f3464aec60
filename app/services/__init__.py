"""The service layer: one function per use case, no Flask inside.

- `inbound.handle_inbound_sms`: an SMS from Tasker or Twilio, from frame to reply.
- `payments`: payments between wallets and cash-in; `settlement`: payouts and top-ups through a
  gateway; `review`: staff actions on held payments and wallets; `reconcile`: payouts against the
  gateway's records.
- `ledger`: every ledger movement, and the one table of allowed state transitions; no other
  module posts entries or changes a transaction's state.
- `admin`: operator use cases (users, devices, Tasker gateways, master-key rotation);
  `staff`: staff accounts, tokens and the audit log; `support`, `kpis`: what staff look up.
- `outbound`: status SMS from the outbox to the provider or a Tasker phone.
"""
