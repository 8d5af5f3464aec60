"""Cryptography of SMS Pay: the SP1 message codec, key wrapping and PIN verification values."""
