"""HTTP plumbing: connections, auth, bodies, answers, parameters, app keys, OpenAPI."""
