"""The operator: kopf handlers and lifecycle, the composition root, the recording pipeline
(``recording/``) and the abort sweep (``aborts/``). The only importer of kopf."""
