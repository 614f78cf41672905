# Successive halving and Hyperband sweeps: rung jobs and their decisions (mnist3d.config.halving).
