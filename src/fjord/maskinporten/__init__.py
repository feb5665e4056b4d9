"""Maskinporten: token client for apps, self-service API client for the operator, and an emulator.

Modules (one idea each):

- ``secret_format``: the Secret/env format the operator writes and apps read.
- ``client``: the app-side token client (JWT-bearer grant, cache, reload, retries).
- ``admin``: the operator-side self-service API client (supplier token, retries).
- ``keys``: RSA JWK generation and public JWKS export.
- ``grant``: building a JWT-bearer grant.
- ``retry``: backoff policy shared by both clients.
- ``registration``: the client object of the self-service API (field names and rules).
- ``errors``: typed errors.
- ``emulator``: a faithful local emulator of Maskinporten and its self-service API.
"""
