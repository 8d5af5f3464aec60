"""The service layer: one function per use case, no Flask inside.

- `inbound.handle_inbound_sms`: an SMS from Tasker or Twilio, from frame to reply.
- `payments`: where money moves (transfers, cash-in), always as balanced ledger entries.
- `admin`: operator use cases (users, devices, Tasker gateways, master-key rotation).
"""
