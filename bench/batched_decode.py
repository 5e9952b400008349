"""Whether decoding several calls' replies in one llama.cpp batch pays on this CPU.

    MODELS_DIR=... .venv/bin/python -m bench.batched_decode [--model NAME] [--streams 1 2 3]
        [--tokens 48] [--runs 3] [--kv unified|split] [--no-repack] [--json FILE]

The appliance serves one turn at a time: with three calls at once, the third caller waits for
the first two replies. Continuous batching would instead put every call's reply in one llama.cpp
context, each under its own sequence id, and advance all of them with one forward pass per token.
Where a forward pass is bound by reading the weights, a batch of N tokens costs little more than
one; where it is bound by arithmetic, N times as much. This measures which, with llama.cpp's
low-level API:

- **batched**: N distinct prompts (one system prompt, N callers' questions) prefilled under seq
  ids 0..N-1, then N tokens per `llama_decode`, greedy, until every stream has `--tokens`;
- **sequential**: the same prompts one after another in a cleared cache, each reply (`--tokens`
  long) to its end before the next starts, as the appliance serves them now.

It prints the median (over `--runs`) prefill time, step time, tokens/s, the step's cost against
one stream's in the same run, and the time until every stream has its first 12 tokens (about a
first sentence, what the phone line needs to start speaking), batched against sequential. The
sequential run also gives each prompt's tokens decoded alone, which the batched tokens are
checked against (batched numerics may differ in the last bits and flip a greedy choice).
Prefill here is the whole prompt; in a call most of it (the system prompt) is in the cache.

Measured here (2 cores, 2 threads, Q4_K_M, December 2026): a step of 3 streams cost 3.1x one
stream's for the 0.5B and 2.7x for the 1.5B, so total tokens/s barely moved; batching reorders the
work (every reply's first sentence sooner, each reply slower) rather than adding any.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import logging
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from appliance.app.engines import weights_file
from appliance.engines.models.manifest import Manifest
from appliance.engines.models.store import ModelStore
from appliance.settings import Settings

FIRST_SENTENCE = 12
"""Tokens in about a first sentence: when a caller starts hearing the reply."""
_BATCH = 512
"""llama.cpp's batch size (llama-cpp-python's default, as the appliance's `Llama` runs)."""

_SYSTEM = (
    "You are the front desk of Harbour Physio, a physiotherapy clinic on 14 Quay Street. "
    "You answer the phone for the clinic. Opening hours are Monday to Friday 8 am to 6 pm and "
    "Saturday 9 am to 1 pm; the clinic is closed on Sundays and public holidays. A first "
    "assessment takes 45 minutes and costs 95 dollars; a follow-up takes 30 minutes and costs "
    "70 dollars. The physiotherapists are Anna Keller, Ben Ortiz and Chloe Nakamura. Parking is "
    "free behind the building, and the entrance has a ramp. Cancellations need 24 hours' notice "
    "or the full fee is charged. Speak in short, plain sentences, as on the phone: no lists, no "
    "markdown, no emoji. Ask one question at a time. Never invent appointments or prices; if "
    "you do not know, offer to take a message for the team."
)
_QUESTIONS = (
    "Hi, I hurt my knee playing football last weekend and it's still swollen. Could I get a "
    "first appointment sometime this week, ideally in the late afternoon after work?",
    "Hello, I'm calling about my mother. She uses a walker, so I wanted to check whether she can "
    "get into the building easily, and where I could park when I drop her off on Saturday.",
    "Good morning. I had a follow-up booked with Ben for tomorrow at ten but something came up "
    "at work. What happens if I cancel now, and is there anything free on Friday instead?",
    "Hey there, how much does a first visit cost, and does Chloe do sports massage as well? My "
    "insurance wants to know the exact price before they approve anything for my shoulder.",
)


@dataclass
class _Streams:
    """What one run produced: each stream's tokens and when each arrived."""

    tokens: list[list[int]]
    arrived: list[list[float]]
    """Seconds from the run's start until each token of each stream was chosen."""
    prefill_s: list[float]
    """Seconds each stream's prompt took (batched: one figure, the prompts together)."""
    steps_s: list[float] = field(default_factory=list)
    """Seconds each decode step took (batched run only)."""


class _Context:
    """One llama.cpp model and context, driven through the C API as continuous batching would."""

    def __init__(
        self, path: Path, *, threads: int, context: int, sequences: int, unified: bool, repack: bool
    ) -> None:
        import llama_cpp as ll

        self._ll = ll
        # llama-cpp-python routes llama.cpp's log through this logger; at INFO it is pages long.
        logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
        ll.llama_backend_init()
        model_params = ll.llama_model_default_params()
        # Repacking (on by default, as in the appliance) lays Q4_K weights out for kernels that
        # take four batch columns at once; fewer go through one column at a time.
        model_params.use_extra_bufts = repack
        self._model = ll.llama_model_load_from_file(str(path).encode(), model_params)
        if not self._model:
            raise SystemExit(f"llama.cpp could not load {path}")
        params = ll.llama_context_default_params()
        params.n_ctx = context
        params.n_batch = params.n_ubatch = _BATCH
        params.n_seq_max = sequences
        params.n_threads = params.n_threads_batch = threads
        # Unified: one cache all sequences share (masked); split: each its own n_ctx/N cells.
        params.kv_unified = unified
        self._ctx = ll.llama_init_from_model(self._model, params)
        self._vocab = ll.llama_model_get_vocab(self._model)
        self._n_vocab = ll.llama_vocab_n_tokens(self._vocab)
        self._memory = ll.llama_get_memory(self._ctx)
        self._batch = ll.llama_batch_init(_BATCH, 0, 1)

    def close(self) -> None:
        self._ll.llama_batch_free(self._batch)
        self._ll.llama_free(self._ctx)
        self._ll.llama_model_free(self._model)

    def tokenize(self, text: str) -> list[int]:
        raw = text.encode()
        out = (self._ll.llama_token * (len(raw) + 16))()
        count = self._ll.llama_tokenize(self._vocab, raw, len(raw), out, len(out), False, True)
        return list(out[:count])

    def clear(self) -> None:
        self._ll.llama_memory_clear(self._memory, True)

    def decode(self, entries: list[tuple[int, int, int, bool]]) -> dict[int, int]:
        """Evaluate (token, position, seq id, wants logits) entries, in batches of `_BATCH`;
        returns the greedy next token of every seq whose entry wanted logits."""
        chosen: dict[int, int] = {}
        for start in range(0, len(entries), _BATCH):
            part = entries[start : start + _BATCH]
            batch = self._batch
            for i, (token, pos, seq, logits) in enumerate(part):
                batch.token[i] = token
                batch.pos[i] = pos
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = seq
                batch.logits[i] = logits
            batch.n_tokens = len(part)
            rc = self._ll.llama_decode(self._ctx, batch)
            if rc != 0:
                raise SystemExit(f"llama_decode returned {rc}")
            # Logits are overwritten by the next decode: read them now.
            for i, (_, _, seq, logits) in enumerate(part):
                if logits:
                    chosen[seq] = self._argmax(i)
        return chosen

    def _argmax(self, index: int) -> int:
        pointer = self._ll.llama_get_logits_ith(self._ctx, index)
        row = np.ctypeslib.as_array(
            ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)), shape=(self._n_vocab,)
        )
        return int(row.argmax())


def _prompts(ctx: _Context, count: int) -> list[list[int]]:
    def chat(question: str) -> str:
        return (
            f"<|im_start|>system\n{_SYSTEM}<|im_end|>\n"
            f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
        )

    if count > len(_QUESTIONS):
        raise SystemExit(f"at most {len(_QUESTIONS)} streams (one question each)")
    return [ctx.tokenize(chat(q)) for q in _QUESTIONS[:count]]


def _prefill(prompt: list[int], seq: int) -> list[tuple[int, int, int, bool]]:
    return [(t, pos, seq, pos == len(prompt) - 1) for pos, t in enumerate(prompt)]


def batched(ctx: _Context, prompts: list[list[int]], tokens: int) -> _Streams:
    """Every prompt under its own seq id, prefilled together, then one token per stream a step."""
    ctx.clear()
    start = time.perf_counter()
    entries = [e for seq, prompt in enumerate(prompts) for e in _prefill(prompt, seq)]
    first = ctx.decode(entries)
    now = time.perf_counter() - start
    run = _Streams([[first[s]] for s in range(len(prompts))], [[now] for _ in prompts], [now])
    for step in range(tokens - 1):
        began = time.perf_counter()
        chosen = ctx.decode(
            [(run.tokens[s][-1], len(p) + step, s, True) for s, p in enumerate(prompts)]
        )
        ended = time.perf_counter()
        run.steps_s.append(ended - began)
        for s in range(len(prompts)):
            run.tokens[s].append(chosen[s])
            run.arrived[s].append(ended - start)
    return run


def sequential(ctx: _Context, prompts: list[list[int]], tokens: int) -> _Streams:
    """Each prompt alone in a cleared cache, its reply to the end before the next one starts."""
    start = time.perf_counter()
    run = _Streams([], [], [])
    for prompt in prompts:
        ctx.clear()
        began = time.perf_counter()
        out = [ctx.decode(_prefill(prompt, 0))[0]]
        arrived = [time.perf_counter() - start]
        run.prefill_s.append(time.perf_counter() - began)
        for step in range(tokens - 1):
            out.append(ctx.decode([(out[-1], len(prompt) + step, 0, True)])[0])
            arrived.append(time.perf_counter() - start)
        run.tokens.append(out)
        run.arrived.append(arrived)
    return run


def _same_prefix(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y), len(a))


def _one_run(
    ctx: _Context, prompts: list[list[int]], streams: list[int], tokens: int
) -> dict[int, dict[str, Any]]:
    """The sequential run of the most streams (its first n are the sequential run of n), then
    the batched run of each stream count."""
    alone = sequential(ctx, prompts[: max(streams)], tokens)
    twelfth = FIRST_SENTENCE - 1
    figures: dict[int, dict[str, Any]] = {}
    for n in streams:
        run = batched(ctx, prompts[:n], tokens)
        solo_prefill = sum(alone.prefill_s[:n])
        figures[n] = {
            "prefill_ms": 1000 * run.prefill_s[0],
            "sequential_prefill_ms": 1000 * solo_prefill,
            "step_ms": 1000 * statistics.median(run.steps_s),
            "tokens_per_s": n * len(run.steps_s) / sum(run.steps_s),
            "first12_batched_ms": 1000 * run.arrived[0][twelfth],
            "first12_sequential_ms": 1000 * alone.arrived[n - 1][twelfth],
            "first12_batched_decode_ms": 1000 * (run.arrived[0][twelfth] - run.prefill_s[0]),
            "first12_sequential_decode_ms": 1000 * (alone.arrived[n - 1][twelfth] - solo_prefill),
            "same_prefix": [_same_prefix(run.tokens[s], alone.tokens[s]) for s in range(n)],
        }
    return figures


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Medians over the runs of each figure, per stream count, and the token checks of all."""
    settings = Settings.load(None)
    store = ModelStore(settings.paths.models, Manifest.load())
    path = weights_file(store, args.model, ".gguf")
    streams = sorted({1, *args.streams})
    ctx = _Context(
        path,
        threads=settings.engines.llm_threads,
        context=settings.engines.llm_context_tokens,
        sequences=max(streams),
        unified=args.kv == "unified",
        repack=not args.no_repack,
    )
    try:
        prompts = _prompts(ctx, max(streams))
        batched(ctx, prompts, 4)  # warm-up: pages the weights in, starts llama.cpp's threads
        runs = [_one_run(ctx, prompts, streams, args.tokens) for _ in range(args.runs)]
    finally:
        ctx.close()
    table: dict[str, Any] = {}
    for n in streams:
        rows = [run[n] for run in runs]
        medians = {
            key: round(statistics.median(row[key] for row in rows), 1)
            for key in rows[0]
            if key != "same_prefix"
        }
        medians["step_ratio_to_1"] = round(
            statistics.median(run[n]["step_ms"] / run[1]["step_ms"] for run in runs), 2
        )
        medians["same_prefix_per_run"] = [row["same_prefix"] for row in rows]
        medians["streams_matching_all_runs"] = sum(
            all(row["same_prefix"][s] == args.tokens for row in rows) for s in range(n)
        )
        table[str(n)] = medians
    return {
        "model": args.model,
        "threads": settings.engines.llm_threads,
        "kv": args.kv,
        "repack": not args.no_repack,
        "tokens": args.tokens,
        "runs": args.runs,
        "prompt_tokens": [len(p) for p in prompts],
        "streams": table,
    }


def _pair(row: dict[str, Any], batched_key: str, sequential_key: str) -> str:
    """`batched / sequential (ratio)` in milliseconds."""
    a, b = row[batched_key], row[sequential_key]
    return f"{a:>6.0f} /{b:>6.0f} ({a / b:.2f})"


def _print(result: dict[str, Any]) -> None:
    print(
        f"{result['model']}: {result['threads']} threads, kv {result['kv']}, "
        f"repack {result['repack']}, {result['tokens']} tokens, median of {result['runs']} "
        f"runs, prompts of {result['prompt_tokens']} tokens"
    )
    print(
        " N  step ms  x1-stream  tok/s all  tok/s each  prefill batched/seq ms    "
        "first-12 batched/seq ms   first-12 decode only      match"
    )
    for n, row in result["streams"].items():
        print(
            f"{n:>2}  {row['step_ms']:>7.1f}  {row['step_ratio_to_1']:>9.2f}  "
            f"{row['tokens_per_s']:>9.1f}  {row['tokens_per_s'] / int(n):>10.1f}  "
            f"{_pair(row, 'prefill_ms', 'sequential_prefill_ms')}   "
            f"{_pair(row, 'first12_batched_ms', 'first12_sequential_ms')}   "
            f"{_pair(row, 'first12_batched_decode_ms', 'first12_sequential_decode_ms')}   "
            f"{row['streams_matching_all_runs']}/{n}"
        )
    print("match: streams whose batched greedy tokens equal the prompt's decoded alone, all runs")
    prefixes = {n: r["same_prefix_per_run"] for n, r in result["streams"].items()}
    print("tokens equal before the first difference, per run and stream:", prefixes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--kv", choices=["unified", "split"], default="unified")
    parser.add_argument("--no-repack", action="store_true", help="llama.cpp's plain CPU kernels")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.tokens < FIRST_SENTENCE:
        parser.error(f"--tokens must be at least {FIRST_SENTENCE}")
    result = measure(args)
    _print(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
