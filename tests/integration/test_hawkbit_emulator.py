# SPDX-License-Identifier: LGPL-2.1-or-later
"""The hawkBit DDI emulator (tests/hawkbit_emu.py) against the reference it was written from
(shared/reference/hawkbit-ddi.md): the tests that drive upkeepd against it rely on these rules, so they
are pinned here with a plain HTTP client: auth (401 with an empty body, auto-registration only with a
gateway token), the one action link, `c` changes, ETag/304, the feedback mapping with its 400/404/405/410
rules, download-only, maintenance windows, cancel, consent with auto-confirm, configData, Range
downloads, and misbehaviour on request."""

import hashlib
import json
import os
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest

SOURCE_ROOT = Path(os.environ.get("UPKEEP_SOURCE_ROOT", Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(SOURCE_ROOT / "tests"))
from hawkbit_emu import Emulator  # noqa: E402

BASE = "/DEFAULT/controller/v1/dev1"
DATA = bytes(range(256)) * 64


@pytest.fixture
def emu():
    e = Emulator().start()
    e.target("dev1", token="secret")
    try:
        yield e
    finally:
        e.stop()


def call(emu, path, method="GET", body=None, auth="TargetToken secret", headers=None,
         content_type="application/json"):
    """(status, headers, body bytes); `path` relative to the server or a full URL."""
    url = path if path.startswith("http") else emu.url(path)
    data = None
    h = dict(headers or {})
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        h["Content-Type"] = content_type
    if auth:
        h["Authorization"] = auth
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def poll(emu, **kw):
    st, _, body = call(emu, BASE, **kw)
    assert st == 200, (st, body)
    return json.loads(body)


def fb(execution, finished="none", details=(), **extra):
    return dict({"status": {"execution": execution, "result": {"finished": finished},
                            "details": list(details)}}, **extra)


def assign(emu, **kw):
    sm = emu.module({"b.upk": DATA, "b.upk.txt": b"notes"})
    return sm, emu.assign("dev1", [sm], **kw)


def test_auth_rules(emu):
    st, _, body = call(emu, BASE, auth="TargetToken wrong")
    assert (st, body) == (401, b"")
    st, _, body = call(emu, BASE, auth=None)
    assert (st, body) == (401, b"")
    # A target token needs an existing target; a gateway token registers unknown ones.
    st, _, _ = call(emu, "/DEFAULT/controller/v1/new1", auth="TargetToken secret")
    assert st == 401
    emu.tenant("DEFAULT").gateway = "gw"
    st, _, body = call(emu, "/DEFAULT/controller/v1/new1", auth="GatewayToken gw")
    assert st == 200
    assert "configData" in json.loads(body)["_links"]
    assert ("default", "new1") in emu.targets
    assert call(emu, "/DEFAULT/controller/v1/" + "x" * 257, auth="GatewayToken gw")[0] == 400
    assert call(emu, "/NOPE/controller/v1/dev1")[0] == 404
    assert call(emu, BASE, method="POST", body={})[0] == 405


def test_config_data_merge_and_link(emu):
    p = poll(emu)
    assert p["config"]["polling"]["sleep"] == "00:05:00"
    href = p["_links"]["configData"]["href"]
    assert urlsplit(href).path == BASE + "/configData"
    assert call(emu, href, "PUT", {"mode": "merge", "data": {"a": "1", "b": "2"}})[0] == 200
    assert "configData" not in poll(emu)["_links"]
    assert call(emu, href, "PUT", {"data": {"a": None, "c": "3"}})[0] == 200
    assert emu.targets[("default", "dev1")].attributes == {"b": "2", "c": "3"}
    assert call(emu, href, "PUT", {"mode": "replace", "data": {"z": "9"}})[0] == 200
    assert emu.targets[("default", "dev1")].attributes == {"z": "9"}
    assert call(emu, href, "PUT", {"data": {}})[0] == 400
    assert call(emu, href, "PUT", {"data": {"k": "x" * 129}})[0] == 400
    assert call(emu, href, "PUT", {"data": {f"k{i}": "v" for i in range(101)}})[0] == 429
    assert call(emu, href, "PUT", b"{}", content_type="text/plain")[0] == 415


def test_forced_action_flow_and_410(emu):
    sm, a = assign(emu)
    p = poll(emu)
    href = p["_links"]["deploymentBase"]["href"]
    assert f"/deploymentBase/{a.id}?c=" in href
    assert "cancelAction" not in p["_links"] and "confirmationBase" not in p["_links"]
    st, _, body = call(emu, href)
    d = json.loads(body)
    assert st == 200 and d["id"] == str(a.id)
    dep = d["deployment"]
    assert (dep["download"], dep["update"]) == ("forced", "forced")
    assert "maintenanceWindow" not in dep
    art = dep["chunks"][0]["artifacts"][0]
    assert art["filename"] == "b.upk" and art["size"] == len(DATA)
    assert art["hashes"]["sha256"] == hashlib.sha256(DATA).hexdigest()
    url = art["_links"]["download"]["href"]
    assert art["_links"]["download-http"]["href"] == url
    # The artifact, whole and in ranges.
    st, h, body = call(emu, url)
    assert (st, body) == (200, DATA) and h["ETag"] == f'"{hashlib.sha1(DATA).hexdigest()}"'
    st, h, body = call(emu, url, headers={"Range": "bytes=100-"})
    assert (st, body, h["Content-Range"]) == (206, DATA[100:], f"bytes 100-{len(DATA) - 1}/{len(DATA)}")
    st, h, _ = call(emu, url, headers={"Range": f"bytes={len(DATA)}-"})
    assert (st, h["Content-Range"]) == (416, f"bytes */{len(DATA)}")
    st, _, body = call(emu, url, headers={"Range": "bytes=10-", "If-Range": '"other"'})
    assert (st, body) == (200, DATA)
    # Several ranges: multipart/byteranges, a part per range with its Content-Range.
    st, h, body = call(emu, url, headers={"Range": "bytes=0-9,100-199,-5"})
    assert st == 206 and "Content-Range" not in h, (st, dict(h))
    ctype = h["Content-Type"]
    assert ctype.startswith("multipart/byteranges; boundary="), ctype
    boundary = ctype.split("boundary=", 1)[1].encode()
    assert int(h["Content-Length"]) == len(body)
    assert body.endswith(b"\r\n--" + boundary + b"--\r\n"), body[-80:]
    got = []
    for part in body.split(b"--" + boundary)[1:-1]:
        head, _, data = part.partition(b"\r\n\r\n")
        (cr,) = [x for x in head.decode().split("\r\n") if x.startswith("Content-Range: ")]
        first, last = map(int, cr.split()[2].split("/")[0].split("-"))
        assert cr.endswith(f"/{len(DATA)}"), cr
        got.append((first, last, data.removesuffix(b"\r\n")))
    n = len(DATA)
    assert got == [(0, 9, DATA[:10]), (100, 199, DATA[100:200]), (n - 5, n - 1, DATA[-5:])], got
    st, h, _ = call(emu, url, headers={"Range": f"bytes=0-9,{len(DATA)}-"})
    assert (st, h["Content-Range"]) == (416, f"bytes */{len(DATA)}")
    assert call(emu, url, headers={"If-Match": '"other"'})[0] == 412
    st, _, body = call(emu, url + ".MD5SUM")
    assert body.decode() == f"{hashlib.md5(DATA).hexdigest()}  b.upk"
    # Feedback.
    fbu = f"{BASE}/deploymentBase/{a.id}/feedback"
    assert call(emu, fbu, "POST", fb("proceeding", details=["downloading"]))[0] == 200
    assert a.status == "RUNNING"
    assert call(emu, fbu, "POST", fb("closed", "success", id=str(a.id)))[0] == 200
    assert a.status == "FINISHED"
    t = emu.targets[("default", "dev1")]
    assert (t.installed_ds, t.update_status) == (("upkeep", "1.1.0"), "IN_SYNC")
    p = poll(emu)
    assert "deploymentBase" not in p["_links"]
    assert p["_links"]["installedBase"]["href"].endswith(f"/installedBase/{a.id}")
    assert "configData" in p["_links"]
    assert call(emu, p["_links"]["installedBase"]["href"])[0] == 200
    # A duplicate final report: 410; the action's artifacts are no longer downloadable.
    assert call(emu, fbu, "POST", fb("closed", "success"))[0] == 410
    assert call(emu, url)[0] == 404
    assert [f["execution"] for f in emu.feedback(a.id)] == ["proceeding", "closed", "closed"]
    assert [f["accepted"] for f in emu.feedback(a.id)] == [True, True, False]


def test_feedback_validated_strictly(emu):
    _, a = assign(emu)
    fbu = f"{BASE}/deploymentBase/{a.id}/feedback"
    assert call(emu, fbu, "POST", {"status": {"execution": "closed", "result": {}}})[0] == 400
    assert call(emu, fbu, "POST", fb("finished"))[0] == 400
    assert call(emu, fbu, "POST", b'{"status": {"execution": "closed", "')[0] == 400
    assert call(emu, fbu, "POST", fb("proceeding"), content_type="text/plain")[0] == 415
    assert call(emu, fbu, "POST", fb("proceeding", details=["x"] * 51))[0] == 429
    assert call(emu, f"{BASE}/deploymentBase/99/feedback", "POST", fb("proceeding"))[0] == 404
    assert a.status == "RUNNING"
    # A timestamp older than the installation date does not move the installed DS.
    t = emu.targets[("default", "dev1")]
    t.installation_date = 10 ** 12
    assert call(emu, fbu, "POST", fb("closed", "success", timestamp=0))[0] == 200
    assert a.status == "FINISHED" and t.installed_ds is None


def test_etag_304(emu):
    st, h, _ = call(emu, BASE)
    tag = h["ETag"]
    st, h2, body = call(emu, BASE, headers={"If-None-Match": tag})
    assert (st, body) == (304, b"")
    assign(emu)
    st, h3, _ = call(emu, BASE, headers={"If-None-Match": tag})
    assert st == 200 and h3["ETag"] != tag


def test_soft_timeforced_and_download_only(emu):
    sm = emu.module({"b.upk": DATA})
    a = emu.assign("dev1", [sm], kind="timeforced", force_after=3600)
    href1 = poll(emu)["_links"]["deploymentBase"]["href"]
    dep = json.loads(call(emu, href1)[2])["deployment"]
    assert (dep["download"], dep["update"]) == ("attempt", "attempt")
    emu.advance(3601)
    href2 = poll(emu)["_links"]["deploymentBase"]["href"]
    assert href2 != href1
    dep = json.loads(call(emu, href2)[2])["deployment"]
    assert (dep["download"], dep["update"]) == ("forced", "forced")
    emu.force_quit(a.id)
    b = emu.assign("dev1", [sm], kind="downloadonly")
    dep = json.loads(call(emu, poll(emu)["_links"]["deploymentBase"]["href"])[2])["deployment"]
    assert (dep["download"], dep["update"]) == ("forced", "skip")
    fbu = f"{BASE}/deploymentBase/{b.id}/feedback"
    assert call(emu, fbu, "POST", fb("downloaded", "success"))[0] == 200
    assert b.status == "DOWNLOADED"
    assert call(emu, fbu, "POST", fb("proceeding"))[0] == 410


def test_maintenance_window(emu):
    sm = emu.module({"b.upk": DATA})
    a = emu.assign("dev1", [sm], window="unavailable")
    href1 = poll(emu)["_links"]["deploymentBase"]["href"]
    dep = json.loads(call(emu, href1)[2])["deployment"]
    assert (dep["update"], dep["maintenanceWindow"]) == ("skip", "unavailable")
    emu.set_window(a.id, "available")
    href2 = poll(emu)["_links"]["deploymentBase"]["href"]
    assert href2 != href1
    dep = json.loads(call(emu, href2)[2])["deployment"]
    assert (dep["update"], dep["maintenanceWindow"]) == ("forced", "available")
    emu.set_window(a.id, "lapsed")
    assert "cancelAction" in poll(emu)["_links"]
    assert a.status == "CANCELING"


def test_cancel_rules(emu):
    sm, a = assign(emu)
    url = json.loads(call(emu, poll(emu)["_links"]["deploymentBase"]["href"])[2])["deployment"][
        "chunks"][0]["artifacts"][0]["_links"]["download"]["href"]
    # Cancel feedback while not canceling: 405.
    assert call(emu, f"{BASE}/cancelAction/{a.id}/feedback", "POST", fb("closed", "success"))[0] == 405
    emu.cancel(a.id)
    links = poll(emu)["_links"]
    assert list(links) == ["cancelAction", "configData"] or "deploymentBase" not in links
    st, _, body = call(emu, links["cancelAction"]["href"])
    assert json.loads(body) == {"id": str(a.id), "cancelAction": {"stopId": str(a.id)}}
    assert call(emu, f"{BASE}/deploymentBase/{a.id}")[0] == 404
    assert call(emu, url, headers={"Range": "bytes=10-"})[0] == 404
    # Rejected: back to RUNNING, the deployment is served again.
    assert call(emu, f"{BASE}/cancelAction/{a.id}/feedback", "POST", fb("rejected"))[0] == 200
    assert a.status == "RUNNING" and "deploymentBase" in poll(emu)["_links"]
    emu.cancel(a.id)
    # "canceled" is the classic mistake: the action stays CANCELING.
    assert call(emu, f"{BASE}/cancelAction/{a.id}/feedback", "POST", fb("canceled"))[0] == 200
    assert a.status == "CANCELING"
    assert call(emu, f"{BASE}/cancelAction/{a.id}/feedback", "POST", fb("closed", "success"))[0] == 200
    assert a.status == "CANCELED"
    assert call(emu, f"{BASE}/deploymentBase/{a.id}/feedback", "POST", fb("closed", "success"))[0] == 410
    assert [f["kind"] for f in emu.feedback(a.id)] == ["cancel", "cancel", "cancel", "cancel", "deployment"]


def test_new_assignment_cancels_the_old_one_first(emu):
    _, a = assign(emu)
    _, b = assign(emu)
    assert a.status == "CANCELING"
    assert poll(emu)["_links"]["cancelAction"]["href"].endswith(f"/cancelAction/{a.id}")
    call(emu, f"{BASE}/cancelAction/{a.id}/feedback", "POST", fb("closed", "success"))
    assert f"/deploymentBase/{b.id}?" in poll(emu)["_links"]["deploymentBase"]["href"]
    emu.tenant("DEFAULT").autoclose = True
    _, c = assign(emu)
    assert b.status == "CANCELED" and f"/deploymentBase/{c.id}?" in poll(emu)["_links"]["deploymentBase"][
        "href"]


def test_consent(emu):
    emu.tenant("DEFAULT").confirmation_flow = True
    _, a = assign(emu)
    links = poll(emu)["_links"]
    assert "deploymentBase" not in links
    href = links["confirmationBase"]["href"]
    st, _, body = call(emu, href)
    assert st == 200 and json.loads(body)["confirmation"]["download"] == "forced"
    assert call(emu, f"{BASE}/deploymentBase/{a.id}")[0] == 404
    assert call(emu, f"{BASE}/deploymentBase/{a.id}/feedback", "POST", fb("proceeding"))[0] == 404
    cfb = f"{BASE}/confirmationBase/{a.id}/feedback"
    assert call(emu, cfb, "POST", {"confirmation": "denied", "details": ["not now"]})[0] == 200
    assert a.status == "WAIT_FOR_CONFIRMATION" and "confirmationBase" in poll(emu)["_links"]
    assert call(emu, cfb, "POST", {"confirmation": "maybe"})[0] == 400
    assert call(emu, cfb, "POST", {"confirmation": "confirmed"})[0] == 200
    assert a.status == "RUNNING" and "deploymentBase" in poll(emu)["_links"]
    assert [f["confirmation"] for f in emu.feedback(a.id, "confirmation")] == ["denied", "maybe", "confirmed"]
    # Revoke (denied on a RUNNING action) goes back to WFC.
    assert call(emu, cfb, "POST", {"confirmation": "denied"})[0] == 200
    assert a.status == "WAIT_FOR_CONFIRMATION"
    # Auto-confirm confirms what waits; a second activation is a 409.
    st, _, body = call(emu, f"{BASE}/confirmationBase")
    c = json.loads(body)
    assert c["autoConfirm"] == {"active": False}
    act = c["_links"]["activateAutoConfirm"]["href"]
    assert call(emu, act, "POST", {"initiator": "upkeep"})[0] == 200
    assert a.status == "RUNNING"
    assert call(emu, act, "POST")[0] == 409
    c = json.loads(call(emu, f"{BASE}/confirmationBase")[2])
    assert c["autoConfirm"]["active"] and c["autoConfirm"]["initiator"] == "upkeep"
    assert call(emu, c["_links"]["deactivateAutoConfirm"]["href"], "POST")[0] == 200
    assert emu.targets[("default", "dev1")].auto_confirm is None


def test_faults_on_request(emu):
    emu.fault("poll", status=503, times=2, body="<html><body>Service Unavailable</body></html>",
              headers={"Retry-After": "7"})
    st, h, body = call(emu, BASE)
    assert (st, h["Retry-After"], h["Content-Type"]) == (503, "7", "text/html") and b"<html>" in body
    assert call(emu, BASE)[0] == 503
    assert call(emu, BASE)[0] == 200
    emu.fault("poll", status=200, body='{"config": {"polling": ')
    st, _, body = call(emu, BASE)
    assert st == 200 and body == b'{"config": {"polling": '
    emu.fault("any", status=401, body="")
    assert call(emu, BASE)[:1] == (401,)
    emu.tenant("DEFAULT").links_missing = True
    assert "_links" not in poll(emu)
    assert [r["status"] for r in emu.requests_to("poll")] == [503, 503, 200, 200, 401, 200]


def test_download_cut_and_throttle(emu):
    sm, a = assign(emu)
    emu.plan_download(sm, "b.upk", cut_at=1000)
    path = f"{BASE}/softwaremodules/{sm.id}/artifacts/b.upk"
    s = socket.create_connection(("127.0.0.1", emu.port), timeout=30)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: TargetToken secret\r\n\r\n".encode())
    got = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    s.close()
    head, _, body = got.partition(b"\r\n\r\n")
    assert b"Content-Length: %d" % len(DATA) in head and body == DATA[:1000]
    # The cut happens once: the resume gets the rest.
    st, _, body = call(emu, path, headers={"Range": "bytes=1000-"})
    assert (st, body) == (206, DATA[1000:])
    assert sm.artifacts[0].requests == [None, "bytes=1000-"]
