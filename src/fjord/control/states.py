"""Deployment states and kinds.

``queued`` → ``publishing`` → (``awaiting_approval`` →) ``progressing`` → ``ready`` | ``failed``;
a newer deployment of the same app and environment marks older unfinished ones ``superseded``.
"""

from __future__ import annotations

QUEUED = "queued"
PUBLISHING = "publishing"
AWAITING_APPROVAL = "awaiting_approval"
PROGRESSING = "progressing"
READY = "ready"
FAILED = "failed"
SUPERSEDED = "superseded"

ACTIVE = (QUEUED, PUBLISHING, AWAITING_APPROVAL, PROGRESSING)
FINAL = (READY, FAILED, SUPERSEDED)

DEPLOY = "deploy"
PROMOTE = "promote"
ROLLBACK = "rollback"
UNDEPLOY = "undeploy"

# Per cluster
PENDING = "pending"
