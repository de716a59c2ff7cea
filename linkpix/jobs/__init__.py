"""The async jobs API underneath the routes: the manager, its SQLite store, live events and webhooks."""
