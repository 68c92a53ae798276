from raft_otp.testing.sim_cli import main

raise SystemExit(main())
