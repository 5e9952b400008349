"""The `appliance` command (also `python -m appliance`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from appliance import __version__

if TYPE_CHECKING:
    from appliance.app import Appliance
    from appliance.settings import Settings

__all__ = ["main"]

_log = logging.getLogger("appliance")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="appliance",
        description="TEL3SIS: a voice agent in a small box that answers phone calls.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--env-file", type=Path, default=Path(".env"), help="settings file (default: .env)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("serve", help="answer calls: load the models and serve until stopped")

    call = commands.add_parser(
        "call", help="one simulated call from a recording, through the real pipeline"
    )
    call.add_argument(
        "--wav", type=Path, required=True, help="the caller's recording (any PCM WAV)"
    )
    call.add_argument("--out", type=Path, help="write the agent's side of the call to this WAV")
    call.add_argument("--json", action="store_true", help="print one JSON object instead of text")

    harness = commands.add_parser(
        "harness", help="run scenario files and report (exit 1 on any failure)"
    )
    harness.add_argument("paths", nargs="+", type=Path, help="scenario files or folders of them")
    harness.add_argument("--json", action="store_true", help="print the results as JSON")
    harness.add_argument("--out", type=Path, help="folder for each scenario's agent audio")
    harness.add_argument(
        "--via",
        choices=("wav", "sip"),
        default="wav",
        help="the line: in process (wav), or real SIP calls over loopback from a second "
        "pjsua2 endpoint (sip)",
    )
    harness.add_argument(
        "--codec",
        choices=("PCMU", "PCMA", "G722"),
        default="PCMU",
        help="with --via sip: the codec the caller offers (default PCMU, as from a trunk)",
    )

    models = commands.add_parser("models", help="the local models: list, install, verify")
    model_commands = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    listing = model_commands.add_parser(
        "list", help="every model, where it comes from, whether it is installed"
    )
    listing.add_argument("--json", action="store_true")
    install = model_commands.add_parser(
        "install", help="install models (the defaults when none are named)"
    )
    install.add_argument("names", nargs="*")
    install.add_argument(
        "--upstream", action="store_true", help="download from the publishers' URLs"
    )
    verify = model_commands.add_parser(
        "verify", help="check installed models; says how to fix what is wrong"
    )
    verify.add_argument("names", nargs="*")
    verify.add_argument("--deep", action="store_true", help="re-hash every file")

    commands.add_parser("doctor", help="check the box and say what to fix")
    return parser


def main(argv: Sequence[str] | None = None) -> int:  # noqa: PLR0911 - one return per command
    args = _parser().parse_args(argv)
    from appliance.observability.logs import configure_logging  # noqa: PLC0415 - after --help
    from appliance.settings import Settings  # noqa: PLC0415

    try:
        settings = Settings.load(args.env_file)
    except ValueError as exc:
        print(f"appliance: bad settings: {exc}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(
        settings.logs.level if args.command == "serve" else "WARNING", settings.logs.format
    )
    try:
        match args.command:
            case "serve":
                return asyncio.run(_serve(settings))
            case "call":
                return asyncio.run(_call(settings, args.wav, args.out, as_json=args.json))
            case "harness":
                return asyncio.run(
                    _harness(
                        settings, args.paths, args.out, as_json=args.json, via=args.via,
                        codec=args.codec,
                    )
                )  # fmt: skip
            case "models":
                return _models(settings, args)
            case "doctor":
                from appliance.doctor import run_doctor  # noqa: PLC0415

                return run_doctor(settings)
    except KeyboardInterrupt:
        return 130
    raise AssertionError(args.command)


def _models(settings: Settings, args: argparse.Namespace) -> int:
    from appliance.engines.models import Manifest, ModelStore  # noqa: PLC0415
    from appliance.engines.models.cli import install_models, list_models, verify_models  # noqa: PLC0415

    store = ModelStore(settings.paths.models, Manifest.load())
    match args.models_command:
        case "list":
            return list_models(store, as_json=args.json)
        case "install":
            return install_models(store, args.names, prefer_upstream=args.upstream)
        case "verify":
            return verify_models(store, args.names, deep=args.deep)
    raise AssertionError(args.models_command)


async def _start(settings: Settings) -> Appliance:
    """Build and start the appliance, saying what it is doing (loading takes seconds)."""
    from appliance.app import Appliance  # noqa: PLC0415

    app = Appliance.build(settings)
    print("Loading models ...", file=sys.stderr, flush=True)
    took = await app.start()
    steps = ", ".join(f"{step} {seconds:.1f} s" for step, seconds in took.items())
    print(f"Ready ({steps}).", file=sys.stderr, flush=True)
    return app


async def _serve(settings: Settings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    app = await _start(settings)
    try:
        await app.serve(stop)
    finally:
        app.close()
    return EXIT_OK


async def _call(settings: Settings, wav: Path, out: Path | None, *, as_json: bool) -> int:
    from appliance.audio.frame import frames_of, rms_dbfs  # noqa: PLC0415
    from appliance.audio.wav import WavFormatError  # noqa: PLC0415
    from appliance.harness.call import run_wav_call  # noqa: PLC0415
    from appliance.harness.report import print_call  # noqa: PLC0415
    from appliance.telephony.wavfile import HangUp, Speak, Step, load_wav  # noqa: PLC0415

    try:
        audio = load_wav(wav)
    except (OSError, WavFormatError) as exc:
        print(f"appliance call: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for note in audio.conversions:
        print(f"{wav}: converted {note}", file=sys.stderr)
    if audio.truncated:
        print(
            f"{wav}: the file is shorter than its header says; using what is there", file=sys.stderr
        )
    audible = any(rms_dbfs(frame) > -50.0 for frame in frames_of(audio.pcm))
    steps: list[Step] = [Speak(audio.pcm, label=wav.name)]
    if audible:
        steps.append(HangUp())
    else:
        # Nobody speaks: the caller stays on the line and the agent ends the call itself.
        print(f"{wav}: no speech in this recording", file=sys.stderr)
    app = await _start(settings)
    try:
        report = await run_wav_call(
            lambda line, sink: app.session(line, sink=sink),
            steps,
            clock=app.clock,
            max_call_s=settings.conversation.max_call_minutes * 60,
        )
    finally:
        app.close()
    if out is not None:
        with contextlib.suppress(FileExistsError):
            out.parent.mkdir(parents=True, exist_ok=True)
        report.line.write_agent_wav(out)
    if as_json:
        print(json.dumps(report.to_json(str(out) if out else None), indent=2))
    else:
        print_call(report, reply_wav=out)
    return EXIT_OK


async def _harness(
    settings: Settings,
    paths: list[Path],
    out: Path | None,
    *,
    as_json: bool,
    via: str = "wav",
    codec: str = "PCMU",
) -> int:
    from appliance.harness.report import print_results  # noqa: PLC0415
    from appliance.harness.runner import run_scenarios  # noqa: PLC0415
    from appliance.harness.scenario import ScenarioError, load_scenarios  # noqa: PLC0415

    try:
        scenarios = load_scenarios(paths)
    except ScenarioError as exc:
        print(f"appliance harness: {exc}", file=sys.stderr)
        return EXIT_USAGE
    app = await _start(settings)
    try:
        async with contextlib.AsyncExitStack() as stack:
            line = None
            if via == "sip":
                from appliance.harness.sipvia import SipVia  # noqa: PLC0415

                line = await stack.enter_async_context(SipVia(app.loopback_sip, codecs=[codec]))
            results = await run_scenarios(
                scenarios,
                lambda line, sink: app.session(line, sink=sink),
                clock=app.clock,
                out_dir=out,
                progress=lambda text: print(text, file=sys.stderr, flush=True),
                via=line,
            )
    finally:
        app.close()
    if as_json:
        print(json.dumps([r.to_json() for r in results], indent=2))
    else:
        print_results(results)
    return EXIT_OK if all(r.passed for r in results) else EXIT_FAILED
