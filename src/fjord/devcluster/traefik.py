"""Traefik as a local cluster's ingress: on the host, with its Kubernetes provider.

Traefik runs as an out-of-cluster client of the cluster (``KUBECONFIG``), reads its Ingresses
(and, when the CRDs exist, IngressRoutes) and sends requests straight to the Pod IPs in the
Services' EndpointSlices, which the host reaches over the real node's bridge. It listens on
loopback only: ``curl -H 'Host: ttd.apps.fjord.localhost' http://127.0.0.1:<port>/ttd/skjema``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2

from fjord.devcluster import binaries

ENTRYPOINT = "web"
INGRESS_CLASS = "traefik"
# What Traefik's Kubernetes Ingress provider looks for in an IngressClass's ``spec.controller``.
CONTROLLER = "traefik.io/ingress-controller"


def available() -> bool:
    """Whether the traefik group is built (a real node's cluster then gets an ingress)."""
    return binaries.is_complete(binaries.group_dir("traefik"))


def argv(*, web_port: int, ping_port: int, crds: bool = False) -> list[str]:
    """Traefik's static configuration, all on the command line."""
    flags = [
        str(binaries.locate_group("traefik") / "traefik"),
        f"--entryPoints.{ENTRYPOINT}.address=127.0.0.1:{web_port}",
        f"--entryPoints.traefik.address=127.0.0.1:{ping_port}",
        "--ping=true",
        "--api=false",
        "--providers.kubernetesingress=true",
        # Only Ingresses without a class or of class "traefik"; others are another ingress's.
        "--providers.kubernetesingress.throttleduration=0s",
        "--global.checknewversion=false",
        "--global.sendanonymoususage=false",
        "--log.level=INFO",
    ]
    if crds:
        flags += ["--providers.kubernetescrd=true", "--providers.kubernetescrd.throttleduration=0s"]
    return flags


def ingress_class() -> dict[str, Any]:
    """The cluster's IngressClass for Traefik: an Ingress with ``ingressClassName: traefik`` is
    served, one naming another class (``nginx``) is left to that controller, i.e. not served."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": {"name": INGRESS_CLASS},
        "spec": {"controller": CONTROLLER},
    }


def ready(ping_port: int) -> bool:
    try:
        return httpx2.get(f"http://127.0.0.1:{ping_port}/ping", timeout=2.0).status_code == 200
    except httpx2.HTTPError:
        return False


def env(kubeconfig: Path) -> dict[str, str]:
    return {"KUBECONFIG": str(kubeconfig)}
