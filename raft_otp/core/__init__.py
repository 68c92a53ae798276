"""The pure Raft core (RA's ``ra_server``): events in, (state, effects) out. No I/O."""
