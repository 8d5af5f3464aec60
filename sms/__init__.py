"""SMS: GSM-7 rules, the instruction plaintext, numbers, the device bundle, inbound routes,
outbound channels and reply texts."""
