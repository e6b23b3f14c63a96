"""fxbench's harness: the suites (speed, distance, accuracy, pretrain), the runner that records their
units, the configuration schema, and the report (``bench.report``). ``python -m bench`` runs it."""
