// The load generator's engine (issue #4).
