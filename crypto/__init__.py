"""Cryptography of SMS Pay: the SP1 message codec, the anti-replay window, key wrapping and PIN
verification values."""
