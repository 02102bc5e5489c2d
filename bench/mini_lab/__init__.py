"""kinograph-mini's workshop, outside the runtime package: training (`python -m bench.mini_lab.train`),
evaluation (`python -m bench.mini_lab.evaluate`), the classical detector that reads clips, and the
colour-area measure that judges the subject consensus independently of it."""
