"""Where webhooks may go (issue 13 item 2): never a ComfyUI backend (its /interrupt stops other users'
runs), never LinkPix itself, loopback and private addresses only when webhook_allow lists them, and the
address checked is the address connected to."""

from __future__ import annotations

import socket
import threading

import pytest
import requests
from jobs_support import JobsServer, free_port

from linkpix.errors import BadRequest
from linkpix.jobs.targets import PinnedAdapter, Targets, check_url
from linkpix.jobs.webhooks import Schedule, WebhookSender


def test_a_webhook_aimed_at_comfyui_is_refused_and_the_other_users_run_completes(project, simulator):
    """The reproduction: a job whose webhook POSTs to the simulator's /interrupt, while another user's
    link is running. Loopback is allowed here, so only the ComfyUI rule stands in the way."""
    simulator.faults.step_delay = 0.1  # the victim's run takes ~1 s
    server = JobsServer(project, simulator.url, webhook_allow=["127.0.0.0/8", "::1"])
    victim: dict[str, requests.Response] = {}
    link = threading.Thread(target=lambda: victim.update(r=server.get("/prompt/victim?width=64&height=64")))
    try:
        link.start()
        port = simulator.url.rsplit(":", 1)[1]
        for url in (f"{simulator.url}/interrupt", f"http://localhost:{port}/interrupt",
                    f"http://[::ffff:127.0.0.1]:{port}/interrupt", f"http://127.0.0.2:{port}/interrupt"):
            r = server.post("/generate", json={"prompt": "attack", "model": "nope.safetensors",
                                               "webhook_url": url})
            assert r.status_code == 400, (url, r.text)
            assert "ComfyUI" in r.json()["message"], (url, r.json()["message"])
        link.join(30)
        assert victim["r"].status_code == 200, victim["r"].text
        assert server.get("/jobs").json()["jobs"] == []
    finally:
        server.close()


def test_a_webhook_aimed_at_linkpix_itself_is_refused(project, simulator):
    server = JobsServer(project, simulator.url, webhook_allow=["127.0.0.0/8"])
    try:
        r = server.post("/generate", json={"prompt": "loop", "webhook_url": f"{server.url}/generate"})
        assert r.status_code == 400 and "LinkPix itself" in r.json()["message"], r.text
        dashboard = server.services.config.settings.web_port
        r = server.post("/generate", json={"prompt": "loop", "webhook_url": f"http://127.0.0.1:{dashboard}/"})
        assert r.status_code == 400 and "LinkPix itself" in r.json()["message"], r.text
    finally:
        server.close()


def test_loopback_needs_the_allow_list(project, simulator, receiver):
    server = JobsServer(project, simulator.url, webhook_allow=[])
    try:
        r = server.post("/generate", json={"prompt": "x", "webhook_url": receiver.url})
        assert r.status_code == 400 and "loopback" in r.json()["message"], r.text
        assert "webhook_allow" in r.json()["message"]
    finally:
        server.close()


@pytest.mark.parametrize("address", ["10.1.2.3", "192.168.1.20", "172.16.0.1", "100.64.0.1", "[fc00::1]"])
def test_private_addresses_need_the_allow_list(address):
    with pytest.raises(BadRequest) as err:
        check_url(f"http://{address}/hook", Targets())
    assert "private" in err.value.message
    network = address.strip("[]")
    assert check_url(f"http://{address}/hook", Targets((network,)))


def test_the_connection_checks_the_rules_on_the_address_it_connects_to(receiver):
    """The rules run inside the connection: a target refused there is never connected to."""
    session = requests.Session()
    port = int(receiver.url.split(":")[2].split("/")[0])
    session.mount("http://", PinnedAdapter(lambda: Targets(("127.0.0.1",), (f"http://127.0.0.1:{port}",))))
    with pytest.raises(BadRequest, match="ComfyUI"):
        session.post(receiver.url, data=b"{}", timeout=5)
    session.mount("http://", PinnedAdapter(lambda: Targets(("127.0.0.1",))))
    assert session.post(receiver.url, data=b"{}", timeout=5).status_code == 200
    assert len(receiver.calls) == 1


def test_a_name_that_rebinds_to_loopback_after_the_check_is_not_delivered(receiver, monkeypatch):
    """DNS rebinding: the name resolves to a public address when checked, then to loopback. Each
    connection resolves once and connects to what it checked, so the loopback receiver is never hit."""
    real = socket.getaddrinfo
    answers = iter(["93.184.215.14"] + ["127.0.0.1"] * 20)  # public; here it never answers in time

    def rebinding(host, port, *args, **kwargs):
        if host == "rebind.example":
            ip = next(answers)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    port = int(receiver.url.split(":")[2].split("/")[0])
    sender = WebhookSender(lambda: Schedule(3, 0.0, 0.5, Targets()))
    attempts: list[dict] = []
    done = threading.Event()
    try:
        sender.send(f"http://rebind.example:{port}/hook", {"job_id": "j", "status": "succeeded"}, None,
                    attempts.append, lambda delivered: done.set())
        assert done.wait(20)
    finally:
        sender.close()
    assert receiver.calls == []
    assert "loopback" in attempts[-1]["error"], attempts


def test_backend_and_own_port_rules_name_the_port(receiver):
    port = free_port()
    with pytest.raises(BadRequest, match="LinkPix itself"):
        check_url(f"http://127.0.0.1:{port}/", Targets(("127.0.0.1",), (), (port,)))
    assert check_url(f"http://127.0.0.1:{port + 1}/", Targets(("127.0.0.1",), (), (port,)))
