"""Pure wire formats: no I/O, no clocks, tested with vectors from the standards and public logs."""
