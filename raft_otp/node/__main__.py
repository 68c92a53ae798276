"""``python -m raft_otp.node --name n1@127.0.0.1:7001 --cookie-file F [--echo]
[--transport-security curve --key-file K --allowed-keys A]``.

Starts a node and serves until SIGTERM/SIGINT.  Prints ``READY <node>`` on stdout
once the socket is bound, so a parent process can wait for it.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Any

from raft_otp.node import runtime
from raft_otp.node.security import Security
from raft_otp.node.transport import NodeConfig


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m raft_otp.node", description=__doc__)
    p.add_argument("--name", required=True, help="node name name@host:port")
    p.add_argument("--cookie", help="shared secret (prefer --cookie-file)")
    p.add_argument("--cookie-file", help="file whose first line is the shared secret")
    p.add_argument("--echo", action="store_true", help="run the 'echo' test actor (supervised)")
    p.add_argument("--heartbeat-ms", type=float, default=100.0)
    p.add_argument("--down-after", type=int, default=5, help="missed heartbeats before node_down")
    p.add_argument("--log-level", default="WARNING")
    p.add_argument("--frame-max-bytes", type=int, default=NodeConfig().frame_max_bytes,
                   help="bigger incoming frames are refused by ZeroMQ")
    p.add_argument("--transport-security", choices=["mac", "curve"], default="mac")
    p.add_argument("--key-file", help="curve: this node's secret key (created 0600 if absent)")
    p.add_argument("--allowed-keys", help="curve: file of 'NODE PUBLIC_KEY' lines")
    args = p.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    cfg = NodeConfig(heartbeat_interval_ms=args.heartbeat_ms, down_after_missed=args.down_after,
                     frame_max_bytes=args.frame_max_bytes)
    sec = Security(args.transport_security, args.key_file, args.allowed_keys)
    name = runtime.start_node(args.name, args.cookie, cookie_file=args.cookie_file, config=cfg,
                              transport_security=sec)
    sup: Any = None
    if args.echo:
        from supervisors import registry

        from raft_otp.node.echo import CountSink

        sup = _start_echo_supervised()
        registry.register("sink", CountSink())
    print(f"READY {name}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        if sup is not None:
            try:
                sup.stop()
            except Exception:
                pass
        runtime.stop_node()
    return 0


def _start_echo_supervised() -> Any:
    """The echo actor under a one_for_one supervisor, so admin 'kill' restarts it."""
    from raft_otp.node.echo import EchoActor

    try:
        from supervisors import ChildSpec, Supervisor

        spec = ChildSpec.actor("echo", EchoActor, name="echo")
        return Supervisor([spec], strategy="one_for_one", intensity=10, period=5.0, id="node").start()
    except Exception:
        logging.getLogger("raft_otp.node").exception("supervised echo failed; running it bare")
        from raft_otp.node.echo import start_echo

        return start_echo()


if __name__ == "__main__":
    sys.exit(main())
