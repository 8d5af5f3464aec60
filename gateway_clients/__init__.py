"""Payment gateways that move money outside the service (Razorpay, UPI PSP, sandbox).

Settlement to UPI ids is not enabled yet: payments to a VPA are refused with a clear SMS.
"""
