"""The janitor: deletes managed credential Secrets nothing uses (their finalizer then removes
the external users)."""
