"""fjord's Kubernetes operators (kopf): backing-service credentials, the janitor, Maskinporten.

Each operator lives in ``fjord.operators.<name>`` and registers its handlers from
``fjord.operators.<name>.handlers`` (see :mod:`fjord.operators.common.runner`).
"""
