"""Stage C: GRPO-S on Ray. `launcher.train` starts the actors and resumes; `trainer.Trainer.fit`
is the loop; the rest is what they need (sampler, groups of actors, checkpoints, tracking,
placement, pre-flight checks, the run folder, metrics, report and export)."""
