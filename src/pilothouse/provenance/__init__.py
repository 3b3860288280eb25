"""Signed SLSA provenance for what a service builds: keys, statements, DSSE envelopes, verify.

`keys` makes and loads Ed25519 keys, `dsse` signs and opens envelopes, `statement` describes a
build as an in-toto Statement v1 with an SLSA Provenance v1 predicate, `verify` checks one
against an artifact and a policy (builder id, source). Needs the `provenance` extra
(`cryptography`).
"""
