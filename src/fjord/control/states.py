"""Deployment states and kinds.

``queued`` → ``publishing`` (a worker runs its steps) → (``awaiting_approval`` → ``queued`` →
``publishing`` →) ``progressing`` → ``ready`` | ``failed``. A newer request for the same app and
environment marks older ``queued`` ones ``superseded`` at once, and older ``progressing`` or
``awaiting_approval`` ones when it moves the tag.
"""

from __future__ import annotations

QUEUED = "queued"
PUBLISHING = "publishing"
AWAITING_APPROVAL = "awaiting_approval"
PROGRESSING = "progressing"
READY = "ready"
FAILED = "failed"
SUPERSEDED = "superseded"
WAITING_WINDOW = "waiting_window"  # outside the environment's delivery windows
ROLLING_OUT = "rolling_out"
HALTED = "halted"
ABORTED = "aborted"
ROLLED_BACK = "rolled_back"

ACTIVE = (
    QUEUED,
    PUBLISHING,
    AWAITING_APPROVAL,
    WAITING_WINDOW,
    ROLLING_OUT,
    HALTED,
    PROGRESSING,
)
FINAL = (READY, FAILED, SUPERSEDED, ABORTED, ROLLED_BACK)

DEPLOY = "deploy"
PROMOTE = "promote"
ROLLBACK = "rollback"
UNDEPLOY = "undeploy"
ROTATE = "rotate"  # a deploy whose config raises the credentials rotation of one environment
# A release built (pushed, signed) from a tag Gitea delivered; no environment, no tag moves.
# Done is ``ready``; it never progresses.
BUILD = "build"

# Per cluster
PENDING = "pending"
