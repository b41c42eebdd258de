"""`hair-ray bench`: the rollout/learner split measured phase by phase, each phase beside a bare
baseline run in the same invocation on the same machine, and optionally TRL's GRPOTrainer on the
identical workload (benchmarks/README.md)."""
