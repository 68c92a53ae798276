"""The ``raft-otp`` console: run a node, watch its live actor tree, administer clusters.

What Erlang's ``observer_cli``, ``rabbitmq-diagnostics`` and ``etcdctl`` do for
their systems, for raft_otp:

* ``raft-otp start``   a node with its default system in the foreground (:mod:`.node_cmd`);
* ``raft-otp demo``    a supervised local 3-node cluster, leader SIGKILLed, no write lost;
* ``raft-otp tree``    the supervision tree of a running node, ``--watch`` redraws it live;
* ``raft-otp status``  systems, clusters, members, roles, terms and indexes;
* ``raft-otp kill``    crash one actor on purpose (a supervision drill);
* ``raft-otp cluster`` / ``command`` / ``query``: cluster administration and use.

Observation and drills go through the node's admin endpoint
(:func:`raft_otp.node.admin.admin_call`): one signed request, no node needed.
Cluster administration, commands and queries make the CLI process a temporary
client node on a free port and use the public API, which already follows
leader redirects and waits out elections (see :mod:`.cluster_cmds`).
"""
