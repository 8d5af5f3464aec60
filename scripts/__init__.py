"""Tools that run beside the service, without it: the feature-phone emulator (phone.py)."""
