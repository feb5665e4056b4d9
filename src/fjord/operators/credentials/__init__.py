"""The credentials operator: AppCredentials → PostgreSQL roles/databases and Redis ACL users,
delivered as Secrets (the aivenator pattern; see docs/operators.md)."""
