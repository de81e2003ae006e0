"""HTTP plumbing shared by every keyless service: app factory, error table, key providers."""
