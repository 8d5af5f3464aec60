"""Payment gateways that move money outside the service: RazorpayX, Cashfree, and the sandbox.

`base.py` is the contract; `build_gateway` in app/bootstrap.py picks one by SMSPAY_GATEWAY.
"""
