module kelp.local/bench-platform

go 1.26
