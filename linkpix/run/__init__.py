"""The processes: `api` (the API server, waitress), `launcher` (the API, dashboard and simulator as child
processes, stopped together), `lifeline` (children die with the launcher, however it dies)."""
