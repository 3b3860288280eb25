"""A JWKS endpoint the auth tests control: RSA keys made here, served as a JWK set on a bound
loopback socket; `down` makes it answer 503 (the identity provider's outage)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ISSUER = "https://idp.test/"
AUDIENCE = "shop"


class SigningKey:
    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_pem = self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "alg": "RS256", "use": "sig"}

    def token(self, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300, **claims}
        return jwt.encode(body, self.private, algorithm="RS256", headers={"kid": self.kid})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(kid: str) -> str:
    """`alg: none`: a header and claims, no signature."""
    now = int(time.time())
    header = b64(json.dumps({"alg": "none", "kid": kid}).encode())
    claims = b64(json.dumps({"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "exp": now + 300}).encode())
    return f"{header}.{claims}."


def hs256_with_public_key(key: SigningKey) -> str:
    """The algorithm-confusion attack: HS256, with the RSA *public* key (which anyone can fetch)
    as the HMAC secret. PyJWT refuses to make one, so it is made by hand."""
    now = int(time.time())
    header = b64(json.dumps({"alg": "HS256", "kid": key.kid, "typ": "JWT"}).encode())
    claims = b64(json.dumps({"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "exp": now + 300}).encode())
    signature = hmac.new(key.public_pem, f"{header}.{claims}".encode(), hashlib.sha256).digest()
    return f"{header}.{claims}.{b64(signature)}"


def tampered(token: str) -> str:
    """The same signature over changed claims (sub → admin)."""
    header, claims, signature = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    data["sub"] = "admin"
    return f"{header}.{b64(json.dumps(data).encode())}.{signature}"


class JwksServer:
    def __init__(self) -> None:
        self.keys: list[SigningKey] = []
        self.down = False
        self.fetches = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.fetches += 1
                if server.down:
                    self.send_response(503)
                    self.end_headers()
                    return
                body = json.dumps({"keys": [k.jwk() for k in server.keys]}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/jwks"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
