"""The single GraphQL endpoint: stitches the services' REST APIs and streams events live."""
