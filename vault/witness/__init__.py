"""An independent witness (C2SP tlog-witness): its own Ed25519 key and its own storage, nothing of the vault's."""
