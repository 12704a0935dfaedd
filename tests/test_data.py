"""helpers.data: mirror, cache, verified atomic downloads (served from loopback), clear errors."""

import dataclasses
import hashlib
import http.server
import io
import os
import threading
import zipfile
from pathlib import Path

import pytest

from helpers import data

MIRROR = os.environ.get("LLM_DATA_MIRROR")
needs_mirror = pytest.mark.skipif(not MIRROR, reason="set LLM_DATA_MIRROR to the offline copies")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache and no mirror: every fetch must come from the (local) server."""
    monkeypatch.setenv("LLM_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("LLM_DATA_MIRROR", raising=False)
    monkeypatch.delenv("LLM_OFFLINE", raising=False)
    return tmp_path / "cache"


@pytest.fixture
def server():
    """A loopback HTTP server; tests put the bytes to serve in ``server.files``."""
    files: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = files.get(self.path.lstrip("/"))
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.files = files
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def register(monkeypatch, name, payload, url, zip_member=None, sha=None):
    """Point the registry entry ``name`` at ``url``, expecting ``payload``."""
    entry = dataclasses.replace(
        data.REGISTRY[name],
        url=url,
        sha256=sha or hashlib.sha256(payload).hexdigest(),
        size=len(payload),
        zip_member=zip_member,
    )
    monkeypatch.setitem(data.REGISTRY, name, entry)
    return entry


PAYLOAD = b"It had always been my fate to have a story to tell.\n" * 50


def test_registry_matches_the_mirror_listing():
    assert set(data.REGISTRY) == {
        "the-verdict.txt",
        "encoder.json",
        "vocab.bpe",
        "SMSSpamCollection",
        "instruction-data.json",
        "tinyshakespeare.txt",
    }
    for entry in data.REGISTRY.values():
        assert len(entry.sha256) == 64 and entry.url.startswith("https://")
        assert entry.size > 0 and entry.licence


@needs_mirror
def test_every_mirror_file_verifies(monkeypatch):
    for name in data.REGISTRY:
        path = data.fetch(name)
        assert path.parent == Path(MIRROR)
        assert data.sha256_of(path) == data.REGISTRY[name].sha256


@needs_mirror
def test_read_text_gives_the_verdict():
    text = data.read_text("the-verdict.txt")
    assert len(text) == 20_479 and text.startswith("I HAD always thought Jack Gisburn")


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(KeyError, match="the-verdict.txt"):
        data.fetch("the-verdikt.txt")


def test_download_verifies_and_caches(cache, server, monkeypatch):
    server.files["verdict"] = PAYLOAD
    register(monkeypatch, "the-verdict.txt", PAYLOAD, f"{server.url}/verdict")
    path = data.fetch("the-verdict.txt", quiet=True)
    assert path == cache / "the-verdict.txt" and path.read_bytes() == PAYLOAD
    # The second fetch comes from the cache: the server no longer has the file.
    del server.files["verdict"]
    assert data.fetch("the-verdict.txt", quiet=True).read_bytes() == PAYLOAD
    assert [p.name for p in cache.iterdir()] == ["the-verdict.txt"]  # no temporary leftovers


def test_corrupted_cache_is_fetched_again(cache, server, monkeypatch, capsys):
    server.files["verdict"] = PAYLOAD
    register(monkeypatch, "the-verdict.txt", PAYLOAD, f"{server.url}/verdict")
    cache.mkdir(parents=True)
    (cache / "the-verdict.txt").write_bytes(PAYLOAD[:-10] + b"XXXXXXXXXX")
    assert data.fetch("the-verdict.txt").read_bytes() == PAYLOAD
    assert "corrupted" in capsys.readouterr().out


def test_partial_cached_file_is_fetched_again(cache, server, monkeypatch):
    server.files["verdict"] = PAYLOAD
    register(monkeypatch, "the-verdict.txt", PAYLOAD, f"{server.url}/verdict")
    cache.mkdir(parents=True)
    (cache / "the-verdict.txt").write_bytes(PAYLOAD[:100])
    assert data.fetch("the-verdict.txt", quiet=True).read_bytes() == PAYLOAD


def test_wrong_download_leaves_no_file(cache, server, monkeypatch):
    server.files["verdict"] = PAYLOAD[:-1]  # a truncated or changed upstream file
    register(monkeypatch, "the-verdict.txt", PAYLOAD, f"{server.url}/verdict")
    with pytest.raises(data.DataError, match="does not match the expected sha256"):
        data.fetch("the-verdict.txt", quiet=True)
    assert not any(cache.iterdir())


def test_zip_member_is_extracted_and_verified(cache, server, monkeypatch):
    member = b"ham\tOk lar... Joking wif u oni...\nspam\tWINNER!! claim your prize\n"
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("readme", "SMS Spam Collection")
        z.writestr("SMSSpamCollection", member)
    server.files["sms.zip"] = archive.getvalue()
    register(monkeypatch, "SMSSpamCollection", member, f"{server.url}/sms.zip", "SMSSpamCollection")
    path = data.fetch("SMSSpamCollection", quiet=True)
    assert path.read_bytes() == member
    assert [p.name for p in cache.iterdir()] == ["SMSSpamCollection"]  # the zip is not kept


def test_not_a_zip_is_a_clear_error(cache, server, monkeypatch):
    server.files["sms.zip"] = b"<html>maintenance</html>"
    register(monkeypatch, "SMSSpamCollection", b"x", f"{server.url}/sms.zip", "SMSSpamCollection")
    with pytest.raises(data.DataError, match="not a zip holding SMSSpamCollection"):
        data.fetch("SMSSpamCollection", quiet=True)


def test_no_network_and_no_mirror_says_what_to_do(cache, server, monkeypatch):
    register(monkeypatch, "the-verdict.txt", PAYLOAD, f"{server.url}/gone")  # 404
    with pytest.raises(data.DataError) as err:
        data.fetch("the-verdict.txt", quiet=True)
    message = str(err.value)
    assert "the-verdict.txt" in message and f"{server.url}/gone" in message
    assert "LLM_DATA_MIRROR" in message


def test_unreachable_host_is_the_same_clear_error(cache, monkeypatch):
    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    register(monkeypatch, "the-verdict.txt", PAYLOAD, "http://127.0.0.1:9/the-verdict.txt")
    with pytest.raises(data.DataError, match="Could not download the-verdict.txt"):
        data.fetch("the-verdict.txt", quiet=True)


def test_offline_switch_never_touches_the_network(cache, monkeypatch):
    monkeypatch.setenv("LLM_OFFLINE", "1")
    with pytest.raises(data.DataError, match="LLM_OFFLINE is set"):
        data.fetch("vocab.bpe", quiet=True)


def test_mirror_is_used_first_and_checked(cache, tmp_path, monkeypatch):
    mirror = tmp_path / "usb-stick"
    mirror.mkdir()
    register(monkeypatch, "the-verdict.txt", PAYLOAD, "http://127.0.0.1:9/never-used")
    (mirror / "the-verdict.txt").write_bytes(PAYLOAD)
    monkeypatch.setenv("LLM_DATA_MIRROR", str(mirror))
    assert data.fetch("the-verdict.txt") == mirror / "the-verdict.txt"
    (mirror / "the-verdict.txt").write_bytes(PAYLOAD[:-3])
    with pytest.raises(data.DataError, match="in LLM_DATA_MIRROR .* is corrupted"):
        data.fetch("the-verdict.txt")


def test_status_and_cli_report(cache, server, monkeypatch, capsys):
    server.files["verdict"] = PAYLOAD
    register(monkeypatch, "the-verdict.txt", PAYLOAD, f"{server.url}/verdict")
    assert data.status("the-verdict.txt") == "missing"
    assert data.main(["fetch", "the-verdict.txt"]) == 0
    assert data.status("the-verdict.txt") == "cached"
    out = capsys.readouterr().out
    assert "ok" in out and "the-verdict.txt" in out and "cached" in out


def test_cli_fails_when_a_file_cannot_be_had(cache, monkeypatch, capsys):
    monkeypatch.setenv("LLM_OFFLINE", "1")
    assert data.main(["fetch", "vocab.bpe"]) == 1
    assert "FAILED" in capsys.readouterr().err


@needs_mirror
def test_cli_fetch_all_from_the_mirror(capsys):
    assert data.main(["fetch", "--all"]) == 0
    out = capsys.readouterr().out
    assert out.count("mirror") >= len(data.REGISTRY)
