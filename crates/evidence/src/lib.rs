//! Evidence: canonical JSON (RFC 8785), Ed25519 `.cal` certificates, the hash-chained audit log.
