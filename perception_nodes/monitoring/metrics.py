"""The monitor's Prometheus endpoint (prometheus-client), bound to loopback unless configured otherwise.

Metrics are built at scrape time from a ``GraphSnapshot`` (a custom collector): the counters the nodes report
about themselves are cumulative already, so they are exposed as counters as they are rather than re-counted.
Names follow Prometheus' conventions: base units (seconds, hertz), ``_total`` for counters, histograms for
latency, and labels only of bounded cardinality (stage, camera, node, topic, feature, model).
"""
from __future__ import annotations

import threading
from typing import Callable

from perception_nodes.monitoring.graph import GraphSnapshot
from perception_nodes.monitoring.topics import AGE_BUCKETS_S, Level

PREFIX = "perception"


class GraphCollector:
    """prometheus_client collector over ``snapshot()`` (called once per scrape)."""

    def __init__(self, snapshot: Callable[[], GraphSnapshot]):
        self._snapshot = snapshot

    def describe(self):
        return []  # unchecked collector: families depend on the graph's topics

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        snap = self._snapshot()
        age = HistogramMetricFamily(f"{PREFIX}_stage_data_age_seconds",
                                    "Receipt time minus header stamp (capture time for image-derived data).",
                                    labels=["stage", "camera"])
        for (stage, camera), (buckets, total, count) in sorted(snap.age_histograms.items(),
                                                               key=lambda kv: (kv[0][0].value, kv[0][1])):
            cumulative, running = [], 0
            for bound, n in zip([*map(str, AGE_BUCKETS_S), "+Inf"], buckets):
                running += n
                cumulative.append((bound, running))
            age.add_metric([stage.value, camera], cumulative, total)
        yield age
        messages = CounterMetricFamily(f"{PREFIX}_topic_messages", "Messages received per watched topic.",
                                       labels=["topic", "stage", "camera"])
        rate = GaugeMetricFamily(f"{PREFIX}_topic_rate_hertz", "Receive rate over the monitor's window.",
                                 labels=["topic", "stage", "camera"])
        expected = GaugeMetricFamily(f"{PREFIX}_topic_expected_rate_hertz", "Rate the site manifest expects.",
                                     labels=["topic", "stage", "camera"])
        jitter = GaugeMetricFamily(f"{PREFIX}_topic_jitter_seconds", "Standard deviation of inter-arrival times.",
                                   labels=["topic", "stage", "camera"])
        level = GaugeMetricFamily(f"{PREFIX}_topic_level", "Diagnostic level: 0 OK, 1 WARN, 2 ERROR, 3 STALE.",
                                  labels=["topic", "stage", "camera"])
        for topic in snap.topics:
            labels = [topic.spec.topic, topic.spec.stage.value, topic.spec.camera]
            messages.add_metric(labels, topic.messages_total)
            if topic.rate_hz is not None:
                rate.add_metric(labels, topic.rate_hz)
            if topic.spec.expected_rate_hz:
                expected.add_metric(labels, topic.spec.expected_rate_hz)
            if topic.jitter_s is not None:
                jitter.add_metric(labels, topic.jitter_s)
            level.add_metric(labels, int(topic.level))
        yield from (messages, rate, expected, jitter, level)
        drops = CounterMetricFamily(f"{PREFIX}_stage_dropped_frames", "Frames that reached the stage before and "
                                    "never this one (paired by stamp).", labels=["stage", "camera"])
        passed = CounterMetricFamily(f"{PREFIX}_stage_passed_frames", "Frames that reached the stage from the one "
                                     "before.", labels=["stage", "camera"])
        for (camera, stage), n in sorted(snap.drops_total.items(), key=lambda kv: (kv[0][1].value, kv[0][0])):
            drops.add_metric([stage.value, camera], n)
        for (camera, stage), n in sorted(snap.passed_total.items(), key=lambda kv: (kv[0][1].value, kv[0][0])):
            passed.add_metric([stage.value, camera], n)
        stage_time = GaugeMetricFamily(f"{PREFIX}_stage_time_median_seconds", "Median time a frame takes to reach "
                                       "the stage from the one before.", labels=["stage"])
        for stage, seconds in snap.stage_time_p50_s.items():
            if seconds is not None:
                stage_time.add_metric([stage.value], seconds)
        yield from (drops, passed, stage_time)
        families = {name: CounterMetricFamily(f"{PREFIX}_node_{name}", f"Inputs {name} by the node (its own count).",
                                              labels=["node"])
                    for name in ("received", "processed", "dropped", "errors")}
        processing = GaugeMetricFamily(f"{PREFIX}_node_processing_seconds", "The node's processing time over its "
                                       "recent window, by quantile.", labels=["node", "quantile"])
        out_rate = GaugeMetricFamily(f"{PREFIX}_node_output_rate_hertz", "Outputs per second (the node's own).",
                                     labels=["node"])
        up = GaugeMetricFamily(f"{PREFIX}_node_up", "1 while the node reports, 0 once it is stale.", labels=["node"])
        node_level = GaugeMetricFamily(f"{PREFIX}_node_level", "Diagnostic level: 0 OK, 1 WARN, 2 ERROR, 3 STALE.",
                                       labels=["node"])
        drift = GaugeMetricFamily(f"{PREFIX}_drift_statistic", "Drift statistic of a feature against the model's "
                                  "reference (method per feature: config/drift.yaml).", labels=["node", "feature"])
        drift_threshold = GaugeMetricFamily(f"{PREFIX}_drift_threshold", "Threshold the drift statistic is judged "
                                            "against.", labels=["node", "feature"])
        drifted = GaugeMetricFamily(f"{PREFIX}_drift_detected", "1 while the feature's statistic is at or above its "
                                    "threshold.", labels=["node", "feature"])
        for report, lvl, _ in snap.nodes:
            for name, family in families.items():
                family.add_metric([report.name], getattr(report, name))
            for quantile, value in zip(("0.5", "0.95", "0.99"), report.processing_ms):
                processing.add_metric([report.name, quantile], value / 1000.0)
            out_rate.add_metric([report.name], report.output_rate_hz)
            up.add_metric([report.name], 0 if lvl is Level.STALE else 1)
            node_level.add_metric([report.name], int(lvl))
            for feature, (statistic, threshold) in sorted(report.drift().items()):
                drift.add_metric([report.name, feature], statistic)
                drift_threshold.add_metric([report.name, feature], threshold)
                drifted.add_metric([report.name, feature], 1 if statistic >= threshold else 0)
        yield from (*families.values(), processing, out_rate, up, node_level, drift, drift_threshold, drifted)
        info = GaugeMetricFamily(f"{PREFIX}_model_info", "The model that produced a topic's latest message.",
                                 labels=["topic", "model"])
        for topic, model in sorted(snap.models.items()):
            info.add_metric([topic, model], 1)
        yield info


def _make_http_server(address: str, port: int, app, tls_context=None):
    """A threaded WSGI server on ``address``:``port`` (IPv4 or IPv6), HTTPS when ``tls_context`` is given."""
    import socket
    import socketserver
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, *args):  # a scrape every few seconds is not news
            pass

    class Server(socketserver.ThreadingMixIn, WSGIServer):
        daemon_threads = True
        address_family = socket.AF_INET6 if ":" in address else socket.AF_INET

        def handle_error(self, request, client_address):
            import ssl
            import sys

            # A client that fails the TLS handshake (plain HTTP, an untrusted certificate) or hangs up is routine
            # for a network endpoint, not a fault of the server; anything else is reported as usual.
            if not isinstance(sys.exc_info()[1], (ssl.SSLError, ConnectionError, TimeoutError)):
                super().handle_error(request, client_address)

    httpd = make_server(address, port, app, Server, handler_class=QuietHandler)
    if tls_context is not None:
        # The handshake happens in the request's thread, so a slow or silent client cannot hold up the others.
        httpd.socket = tls_context.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
    return httpd


class MetricsServer:
    """An HTTP(S) endpoint serving the collector's metrics; ``port`` 0 picks a free port (``port`` tells which).

    ``web_config`` (``monitoring.web_config.WebConfig``) adds TLS and/or basic authentication."""

    def __init__(self, snapshot: Callable[[], GraphSnapshot], address: str = "127.0.0.1", port: int = 9464,
                 web_config=None):
        from prometheus_client import CollectorRegistry, make_wsgi_app

        from perception_nodes.monitoring.web_config import auth_middleware

        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(GraphCollector(snapshot))
        app = make_wsgi_app(self.registry)
        tls = None
        if web_config is not None:
            app = auth_middleware(app, web_config)
            tls = web_config.tls.context() if web_config.tls is not None else None
        self.scheme = "https" if tls is not None else "http"
        self.authenticated = bool(web_config is not None and web_config.requires_auth)
        self._server = _make_http_server(address, port, app, tls)
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics-endpoint", daemon=True)
        self._thread.start()
        self.address = address
        self.port = int(self._server.server_address[1])
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            if self._server is not None:
                self._server.shutdown()
                self._server.server_close()
                self._thread.join(timeout=5.0)
                self._server = None

    def render(self) -> str:
        from prometheus_client import generate_latest

        return generate_latest(self.registry).decode()
