"""Domain logic between kopf and the database: observation, recording, abort sweep, actions client.

No kopf decorators here; pure functions where possible."""
