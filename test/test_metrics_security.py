"""The metrics endpoint behind TLS and basic authentication (exporter-toolkit web config), on loopback only."""
from __future__ import annotations

import base64
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request

import pytest

from perception_nodes.errors import ConfigError
from perception_nodes.monitoring.graph import GraphMonitor
from perception_nodes.monitoring.metrics import MetricsServer
from perception_nodes.monitoring.web_config import load_web_config

bcrypt = pytest.importorskip("bcrypt")

PASSWORD = "correct horse battery staple"


def _hash(password: str = PASSWORD) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


def _get(url: str, user: str | None = None, password: str | None = None, context=None) -> tuple[int, str, dict]:
    request = urllib.request.Request(url)
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


def _server(web_config):
    return MetricsServer(lambda: GraphMonitor([]).snapshot(0.0), "127.0.0.1", 0, web_config)


def test_basic_auth_turns_away_missing_and_wrong_credentials(tmp_path):
    config_file = tmp_path / "web.yml"
    config_file.write_text(f"basic_auth_users:\n  prometheus: '{_hash()}'\n")
    config = load_web_config(config_file)
    server = _server(config)
    try:
        assert server.scheme == "http" and server.authenticated
        url = f"http://127.0.0.1:{server.port}/metrics"
        status, _, headers = _get(url)
        assert status == 401 and headers["WWW-Authenticate"].startswith("Basic realm=")
        assert _get(url, "prometheus", "wrong")[0] == 401
        assert _get(url, "nobody", PASSWORD)[0] == 401
        status, text, _ = _get(url, "prometheus", PASSWORD)
        assert status == 200 and "# HELP perception_" in text
        assert _get(url, "prometheus", PASSWORD)[0] == 200   # the cached grant
        assert _get(url, "prometheus", "wrong")[0] == 401     # the cache never grants another password
    finally:
        server.close()
    assert not config.check_header("Basic !!!not base64")
    assert not config.check_header("Bearer abc")


def test_web_config_errors_name_the_file_and_the_problem(tmp_path):
    def write(text):
        path = tmp_path / "web.yml"
        path.write_text(text)
        return path

    with pytest.raises(ConfigError, match="unknown keys"):
        load_web_config(write("basic_auth_user:\n  a: b\n"))           # a typo must not leave it open
    with pytest.raises(ConfigError, match="not a bcrypt hash"):
        load_web_config(write("basic_auth_users:\n  prometheus: plaintext\n"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_web_config(write("tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n"))
    with pytest.raises(ConfigError, match="client_ca_file"):
        (tmp_path / "a.crt").write_text("x")
        load_web_config(write("tls_server_config:\n  cert_file: a.crt\n  key_file: a.crt\n"
                              "  client_auth_type: RequireAndVerifyClientCert\n"))
    with pytest.raises(ConfigError, match="cannot load"):
        load_web_config(write("tls_server_config:\n  cert_file: a.crt\n  key_file: a.crt\n"))   # not a certificate
    with pytest.raises(ConfigError, match="does not exist"):
        load_web_config(tmp_path / "nowhere.yml")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_tls_serves_https_only_and_with_auth(tmp_path):
    cert, key = tmp_path / "metrics.crt", tmp_path / "metrics.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    config_file = tmp_path / "web.yml"
    config_file.write_text(f"tls_server_config:\n  cert_file: metrics.crt\n  key_file: metrics.key\n"
                           f"basic_auth_users:\n  prometheus: '{_hash()}'\n")
    server = _server(load_web_config(config_file))
    try:
        assert server.scheme == "https"
        trusted = ssl.create_default_context(cafile=str(cert))
        url = f"https://127.0.0.1:{server.port}/metrics"
        assert _get(url, context=trusted)[0] == 401
        status, text, _ = _get(url, "prometheus", PASSWORD, context=trusted)
        assert status == 200 and "# HELP perception_" in text
        with pytest.raises(urllib.error.URLError):   # the certificate is checked: an untrusted one is refused
            _get(url, "prometheus", PASSWORD, context=ssl.create_default_context())
        with pytest.raises((urllib.error.URLError, ConnectionError)):   # plain HTTP gets no metrics
            _get(f"http://127.0.0.1:{server.port}/metrics", "prometheus", PASSWORD)
    finally:
        server.close()
