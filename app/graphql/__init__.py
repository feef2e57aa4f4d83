"""The GraphQL layer: schema, types, loaders and request context."""
