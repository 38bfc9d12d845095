"""The `trellis` command: operations (migrate, sweep, outbox, dlq) and development (run, seed, token)."""
