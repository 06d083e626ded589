"""Who may read the Prometheus endpoint, and over what: TLS and basic authentication.

The file has the layout of the Prometheus exporter toolkit's ``web-config.yml`` (the one node_exporter and the other
official exporters read), so a site's existing file and its bcrypt password hashes work unchanged::

    tls_server_config:                 # optional: serve HTTPS
      cert_file: /etc/perception/metrics.crt
      key_file: /etc/perception/metrics.key
      client_ca_file: /etc/perception/ca.crt           # optional: verify client certificates against it
      client_auth_type: RequireAndVerifyClientCert     # NoClientCert (default) or RequireAndVerifyClientCert
    basic_auth_users:                  # optional: user -> bcrypt hash (htpasswd -nBC 10 "" | tr -d ':\\n')
      prometheus: $2y$10$...

Relative paths are relative to the file. A request without valid credentials gets 401 with a
``WWW-Authenticate`` challenge; a successful check is cached (bcrypt is slow on purpose, and Prometheus scrapes
every few seconds), keyed by a hash of the credentials, never the password itself.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path

from perception_nodes.errors import ConfigError
from perception_nodes.fileio import read_yaml_mapping

CLIENT_AUTH_TYPES = ("NoClientCert", "RequireAndVerifyClientCert")
REALM = "perception metrics"


@dataclass(frozen=True)
class TlsConfig:
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None
    client_auth_type: str = "NoClientCert"

    def context(self) -> ssl.SSLContext:
        """A server-side TLS context (TLS 1.2 or newer) with the certificate, and client verification if asked."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(str(self.cert_file), str(self.key_file))
            if self.client_ca_file is not None:
                context.load_verify_locations(cafile=str(self.client_ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"metrics TLS: cannot load {self.cert_file} / {self.key_file}"
                              f"{f' / {self.client_ca_file}' if self.client_ca_file else ''}: {exc}") from None
        if self.client_auth_type == "RequireAndVerifyClientCert":
            context.verify_mode = ssl.CERT_REQUIRED
        return context


@dataclass
class WebConfig:
    """TLS and basic-auth settings of the metrics endpoint (both optional)."""

    tls: TlsConfig | None = None
    users: dict[str, bytes] = field(default_factory=dict)   # user -> bcrypt hash
    source: str = ""
    _granted: set = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def requires_auth(self) -> bool:
        return bool(self.users)

    def check_header(self, header: str | None) -> bool:
        """Whether an ``Authorization`` header carries a configured user's password (always True without users)."""
        if not self.users:
            return True
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return self.check(user, password)

    def check(self, user: str, password: str) -> bool:
        import bcrypt

        hashed = self.users.get(user)
        if hashed is None:
            # Spend the same time as a known user, so a response's timing does not say which users exist.
            bcrypt.checkpw(b"x", _DUMMY_HASH)
            return False
        key = hashlib.sha256(b"\0".join((user.encode(), password.encode(), hashed))).digest()
        with self._lock:
            if any(hmac.compare_digest(key, granted) for granted in self._granted):
                return True
        if not bcrypt.checkpw(password.encode(), hashed):
            return False
        with self._lock:
            self._granted.add(key)
        return True


_DUMMY_HASH = b"$2b$10$" + b"." * 53


def load_web_config(path: str | os.PathLike) -> WebConfig:
    """Parse a web config file; ConfigError names the file and what is wrong (unknown keys too: a typo must not
    leave the endpoint open)."""
    path = Path(path)
    data = read_yaml_mapping(path, "metrics web config")
    unknown = set(data) - {"tls_server_config", "basic_auth_users", "http_server_config"}
    if unknown:
        raise ConfigError(f"{path}: unknown keys {sorted(unknown)} (known: tls_server_config, basic_auth_users)")

    def resolve(value, key) -> Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{path}: tls_server_config.{key} must be a file path")
        file = Path(value) if os.path.isabs(value) else path.parent / value
        if not file.is_file():
            raise ConfigError(f"{path}: tls_server_config.{key} {file} does not exist")
        return file

    tls = None
    raw_tls = data.get("tls_server_config")
    if raw_tls is not None:
        if not isinstance(raw_tls, dict):
            raise ConfigError(f"{path}: tls_server_config must be a mapping")
        extra = set(raw_tls) - {"cert_file", "key_file", "client_ca_file", "client_auth_type"}
        if extra:
            raise ConfigError(f"{path}: tls_server_config has unsupported keys {sorted(extra)}")
        auth_type = str(raw_tls.get("client_auth_type", "NoClientCert"))
        if auth_type not in CLIENT_AUTH_TYPES:
            raise ConfigError(f"{path}: client_auth_type {auth_type!r} is not one of {list(CLIENT_AUTH_TYPES)}")
        client_ca = resolve(raw_tls["client_ca_file"], "client_ca_file") if raw_tls.get("client_ca_file") else None
        if auth_type == "RequireAndVerifyClientCert" and client_ca is None:
            raise ConfigError(f"{path}: client_auth_type RequireAndVerifyClientCert needs client_ca_file")
        tls = TlsConfig(resolve(raw_tls.get("cert_file"), "cert_file"), resolve(raw_tls.get("key_file"), "key_file"),
                        client_ca, auth_type)
        tls.context()   # a certificate that does not load fails here, at configuration, not at the first scrape
    users = {}
    raw_users = data.get("basic_auth_users") or {}
    if not isinstance(raw_users, dict):
        raise ConfigError(f"{path}: basic_auth_users must map user names to bcrypt hashes")
    for user, hashed in raw_users.items():
        if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")) or len(hashed) != 60:
            raise ConfigError(f"{path}: basic_auth_users.{user} is not a bcrypt hash (htpasswd -nBC 10 \"\" | "
                              "tr -d ':\\n' makes one)")
        users[str(user)] = hashed.encode()
    if users:
        try:
            import bcrypt  # noqa: F401 - checked here so a missing package fails at configuration
        except ImportError as exc:
            raise ConfigError(f"{path}: basic_auth_users needs the bcrypt package ({exc})") from None
    return WebConfig(tls, users, str(path))


def auth_middleware(app, config: WebConfig):
    """A WSGI app that answers 401 unless the request carries valid basic-auth credentials."""
    if not config.requires_auth:
        return app

    def guarded(environ, start_response):
        if config.check_header(environ.get("HTTP_AUTHORIZATION")):
            return app(environ, start_response)
        start_response("401 Unauthorized", [("Content-Type", "text/plain; charset=utf-8"),
                                            ("WWW-Authenticate", f'Basic realm="{REALM}", charset="UTF-8"')])
        return [b"Unauthorized\n"]

    return guarded
