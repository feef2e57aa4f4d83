"""Live refresh: role events from Redis, fanned out to GraphQL subscriptions."""
