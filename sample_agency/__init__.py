"""A sample agency built only on the SDK (vault_sdk): a counter clerk's screen, a pre-filled form, a QR verifier."""
