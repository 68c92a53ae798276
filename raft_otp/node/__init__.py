"""Node runtime: registry bridge, ZeroMQ transport, msgpack codec, failure detector."""
