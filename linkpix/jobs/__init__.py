"""The async jobs API underneath the routes: `manager` runs jobs (with `progress`: a run's events turned into
the job's progress, and `delivery`: its webhook), `store` keeps them in SQLite, `events` streams them,
`webhooks`/`targets` send and aim webhooks, `retention` prunes; `redis_*` and `replicated_manager` are the
same with several replicas."""
