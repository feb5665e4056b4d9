"""The Maskinporten operator: one Digdir client per ``MaskinportenClient``, keys in a Secret.

observe (``observe``) → pure plan (``plan``) → ordered commands (``act``), glued by ``reconcile``;
``runtime`` holds what lives as long as the process, ``handlers`` wires it into kopf. See
docs/operators.md ("Maskinporten operator").
"""
