"""SMS formats: GSM-7 rules, the instruction plaintext, inbound routes and reply texts."""
