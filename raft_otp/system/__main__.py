"""``python -m raft_otp.system``: run one node (see ``raft_otp.system.node_main``)."""

import sys

from raft_otp.system.node_main import main

sys.exit(main())
