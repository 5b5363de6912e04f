#!/usr/bin/env python3
"""A registry token server for the scanner benchmarks (the Docker/OCI bearer flow).

`token_server.py DIR SERVICE ISSUER`: makes an EC P-256 signing key and a self-signed
certificate in DIR (`signing.key`, `signing.crt`: the registry's `rootcertbundle`), listens on
127.0.0.1 at a free port (written to DIR/port once listening), and answers
`GET /token?service=..&scope=repository:<name>:pull` with an ES256 JWT granting what is asked,
to anyone (anonymous pull, as Docker Hub grants public images). HTTP/1.1 with keep-alive, a
thread per connection. Every request is counted: one line per request appended to DIR/requests.

Needs python3 with `cryptography` (Debian: python3-cryptography).
"""

import base64
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

directory, service, issuer = sys.argv[1], sys.argv[2], sys.argv[3]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


key = ec.generate_private_key(ec.SECP256R1())
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tagline bench token signer")])
now = time.time()
cert = (
    x509.CertificateBuilder()
    .subject_name(name)
    .issuer_name(name)
    .public_key(key.public_key())
    .serial_number(x509.random_serial_number())
    .not_valid_before(__import__("datetime").datetime.fromtimestamp(now - 3600))
    .not_valid_after(__import__("datetime").datetime.fromtimestamp(now + 86400))
    .sign(key, hashes.SHA256())
)
with open(os.path.join(directory, "signing.crt"), "wb") as f:
    f.write(cert.public_bytes(serialization.Encoding.PEM))
x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
header = b64url(json.dumps({"typ": "JWT", "alg": "ES256", "x5c": [x5c]}).encode())
lock = threading.Lock()
counter = [0]
log = open(os.path.join(directory, "requests"), "a", buffering=1)


def token(scopes):
    access = []
    for scope in scopes:
        parts = scope.split(":", 2)
        if len(parts) == 3:
            access.append({"type": parts[0], "name": parts[1], "actions": parts[2].split(",")})
    t = int(time.time())
    with lock:
        counter[0] += 1
        jti = f"{t}-{counter[0]}"
    claims = {
        "iss": issuer,
        "sub": "",
        "aud": service,
        "exp": t + 300,
        "nbf": t - 10,
        "iat": t,
        "jti": jti,
        "access": access,
    }
    signing_input = f"{header}.{b64url(json.dumps(claims).encode())}"
    der = key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return f"{signing_input}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, a keep-alive client's
    # delayed ACK holds the body back about 40 ms per request.
    disable_nagle_algorithm = True

    def do_GET(self):
        url = urlsplit(self.path)
        with lock:
            log.write(self.path + "\n")
        if url.path != "/token":
            body, status = b'{"errors":[{"code":"NOT_FOUND"}]}', 404
        else:
            scopes = [v for k, v in parse_qsl(url.query) if k == "scope"]
            t = token(scopes)
            body, status = json.dumps({"token": t, "access_token": t, "expires_in": 300}).encode(), 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
with open(os.path.join(directory, "port.tmp"), "w") as f:
    f.write(str(server.server_address[1]))
os.rename(os.path.join(directory, "port.tmp"), os.path.join(directory, "port"))
server.serve_forever()
