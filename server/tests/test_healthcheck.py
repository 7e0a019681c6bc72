"""The image's HEALTHCHECK: /health on PORT for the server, the raylet's port for a Ray worker
node (which serves no HTTP), and a reason when either is silent."""

from __future__ import annotations

import http.server
import socket
import threading

from flux_server.healthcheck import probe

from tests.fixtures.ports import free_port


def test_a_worker_node_is_healthy_while_its_raylet_listens():
    node_manager = free_port()
    base = node_manager - 1  # --node-manager-port = base + 1
    with socket.socket() as raylet:
        raylet.bind(("127.0.0.1", node_manager))
        raylet.listen()
        env = {"FLUX_RAY_HEAD": "10.0.0.1:6379", "FLUX_NODE_IP": "127.0.0.1",
               "FLUX_RAY_PORT_BASE": str(base), "PORT": str(free_port())}  # nothing on PORT
        assert probe(env) is None
    problem = probe(env)
    assert problem and "raylet" in problem and f"127.0.0.1:{base + 1}" in problem


def test_the_server_is_healthy_when_health_answers():
    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", free_port()), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert probe({"PORT": str(server.server_port)}) is None
    finally:
        server.shutdown()
        server.server_close()
    problem = probe({"PORT": str(server.server_port)})
    assert problem and f"127.0.0.1:{server.server_port}/health" in problem
