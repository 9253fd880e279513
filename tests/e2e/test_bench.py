"""`reconciler bench` on the example, through the real engine and the fake Ollama: it waits for
nobody to use Ollama (and refuses while somebody does), measures each model, records the run
in the SQLite history with what identifies it, says the figures are simulated (the fake says
so), and leaves the pinned set loaded as a reconcile wants it: zero mutating calls after."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.analytics.history import History, history_path
from reconciler.report.bench_html import figures
from tests.e2e.stack import Stack, example_on, open_window
from tests.harness.browser import ARTIFACTS, chromium

pytestmark = pytest.mark.e2e
# the fake's GPU: 8 GB at 4 GB/s and 200 TFLOP/s (the stand-ins are tiny; this keeps a run short)
HARDWARE = {
    "FAKE_OLLAMA_GPU_BANDWIDTH": "4.0e+9",
    "FAKE_OLLAMA_GPU_FLOPS": "2.0e+14",
}


def _cli(stack: Stack, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "reconciler.cli", *args, "--state-dir", str(stack.state.root)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def _bench(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return _cli(stack, "bench", *args, "--repo", str(stack.repo), "--rev", "HEAD", "--json")


def _commit(stack: Stack) -> str:
    """The desired state as a commit of a git repo, as on the server."""
    git = ["git", "-C", str(stack.repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    if not (stack.repo / ".git").exists():
        subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "desired state", "--allow-empty"], check=True)
    return subprocess.run(
        [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()


def _tail(name: str) -> str:
    return name.rsplit("/", 1)[-1].lower()


def _chat(
    stack: Stack, model: str, tokens: int, done: threading.Event, seen: dict[str, int] | None = None
) -> None:
    """A person's chat: a streamed answer of `tokens` tokens (about 9 s for 600 at these speeds)."""
    body = {"model": model, "messages": [{"role": "user", "content": "Tell me a long story."}],
            "options": {"num_ctx": 4096, "num_predict": tokens}}  # fmt: skip
    with httpx.stream("POST", f"{stack.url}/api/chat", json=body, timeout=120) as response:
        chunks = sum(1 for line in response.iter_lines() if line)
    if seen is not None:
        seen["chunks"] = chunks
    done.set()


def _chat_until(stack: Stack, model: str, stop: threading.Event, streaming: threading.Event) -> None:
    """A person's long chat, streamed until `stop` (then the person closes it, as a browser tab)."""
    body = {"model": model, "messages": [{"role": "user", "content": "Tell me a long story."}],
            "options": {"num_ctx": 4096, "num_predict": 100_000}}  # fmt: skip
    with httpx.stream("POST", f"{stack.url}/api/chat", json=body, timeout=120) as response:
        for line in response.iter_lines():
            if line:
                streaming.set()
            if stop.is_set():
                return


def _ours(calls: list[str]) -> list[str]:
    """The mutating calls not made by the person's chat (the reconciler never calls /api/chat)."""
    return [c for c in calls if c != "POST /api/chat"]


def test_bench_measures_the_example_records_it_and_restores_the_pinned_set(stack: Stack) -> None:
    names = example_on(stack, extra_env=HARDWARE)
    stack.ollama["benchmarks"]["quiet"] = "30s"
    stack.write()
    commit = _commit(stack)
    first = stack.apply()
    assert first.result == "converged", first.plans[-1].violations
    llama3, phi3, deepseek = (names[n] for n in ("llama3:8b-instruct-q4_K_M", "phi3:mini", "deepseek-r1:7b"))
    embed = names["nomic-embed-text"]
    pinned = {llama3, embed}
    assert set(stack.loaded()) == pinned

    started = time.monotonic()
    done = _bench(stack, "--runs", "2", "--max-wait", "5")
    wall = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)
    run = out["run"]
    assert run["status"] == "completed" and out["simulated"] is True
    assert "perf.py" in run["machine"]["simulated"] and run["machine"]["ollama_version"] == "0.32.15"
    assert run["revision"] == commit
    by_model = {_tail(r["model"]): r for r in run["results"]}
    assert set(by_model) == {_tail(n) for n in (llama3, phi3, deepseek)}
    for result in run["results"]:
        cases = {c["case"]: c for c in result["cases"]}
        assert set(cases) == {"chat", "code", "summary", "long"}
        assert all(c["eval_tps"]["n"] == 2 and c["eval_tps"]["median"] > 0 for c in cases.values())
        assert all(c["ttft_s"]["median"] > 0 and c["prompt_tps"]["median"] > 0 for c in cases.values())
        assert result["load_s"]["n"] == 2 and result["size_vram"] == result["size"] > 0
        num_ctx = result["setting"]["num_ctx"]
        assert 0.6 * num_ctx < cases["long"]["prompt_tokens"] < num_ctx  # the long prompt nearly fills it
        assert result["setting"]["kv_type"] == "q8_0" and result["context_length"] == num_ctx
    assert by_model[_tail(llama3)]["setting"]["num_ctx"] == 8192
    # bandwidth-bound: the late tokens of the long prompt read a bigger KV cache, so they are slower
    llama = {c["case"]: c for c in by_model[_tail(llama3)]["cases"]}
    assert llama["long"]["eval_tps"]["median"] < llama["chat"]["eval_tps"]["median"]

    # the history: one run, three results, with the digests Ollama lists
    db = sqlite3.connect(history_path(stack.state.root))
    ((version, simulated, revision, status),) = db.execute(
        "SELECT ollama_version, simulated, revision, status FROM runs"
    ).fetchall()
    assert (version, revision, status) == ("0.32.15", commit, "completed") and "perf.py" in simulated
    digests = {
        m["name"]: m["digest"] for m in httpx.get(f"{stack.url}/api/tags", timeout=10).json()["models"]
    }
    stored = dict(db.execute("SELECT model, digest FROM results").fetchall())
    assert {_tail(m): d for m, d in stored.items()} == {
        _tail(n): digests[n] for n in (llama3, phi3, deepseek)
    }

    # the pinned set is back, and a reconcile has nothing to do: zero mutating calls
    loaded = stack.loaded()
    assert set(loaded) == pinned and all(m["expires_at"].startswith("23") for m in loaded.values())
    assert stack.state.load().evictions == {}
    calls = stack.mutating_ollama_calls()
    again = stack.apply()
    assert again.result == "converged" and again.actions_run == 0, again.plans[0].actions
    assert stack.mutating_ollama_calls() == calls
    print(f"bench wall time: {wall:.1f} s for 3 models × 2 runs ({wall / 3:.1f} s a model)")

    # somebody chats with phi3: the benchmark does not start, and touches nothing
    chatting = threading.Event()
    thread = threading.Thread(target=_chat, args=(stack, phi3, 600, chatting), daemon=True)
    thread.start()
    time.sleep(1.0)
    before = stack.mutating_ollama_calls()
    refused = _bench(stack, llama3, "--max-wait", "2")
    assert refused.returncode == 4, refused.stderr
    assert "not benchmarking: Ollama is in use" in refused.stderr and "phi3" in refused.stderr
    assert not chatting.is_set(), "the chat ended before the benchmark looked"
    assert stack.mutating_ollama_calls() == before  # nothing unloaded, nothing loaded
    thread.join(60)
    assert phi3 in stack.loaded()  # (with OLLAMA_MAX_LOADED_MODELS 2 it pushed a pinned model out)
    rows = sqlite3.connect(history_path(stack.state.root)).execute("SELECT COUNT(*) FROM runs").fetchone()
    assert rows == (1,)


def test_a_chat_that_starts_during_the_benchmark_stops_it(stack: Stack) -> None:
    names = example_on(stack, extra_env=HARDWARE)
    stack.ollama["benchmarks"]["quiet"] = "1s"
    stack.write()
    _commit(stack)
    assert stack.apply().result == "converged"
    llama3, phi3 = names["llama3:8b-instruct-q4_K_M"], names["phi3:mini"]
    cmd = [sys.executable, "-m", "reconciler.cli", "bench", llama3, "--runs", "20", "--repo", str(stack.repo),
           "--rev", "HEAD", "--state-dir", str(stack.state.root), "--json"]  # fmt: skip
    httpx.delete(f"{stack.url}/__fake/events", timeout=10)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(
        e.get("type") == "load" and e.get("model") == llama3 for e in stack.fake_events()
    ):
        time.sleep(0.2)
    time.sleep(2.0)  # into its runs
    chatting, answer = threading.Event(), {"chunks": 0}
    thread = threading.Thread(target=_chat, args=(stack, phi3, 300, chatting, answer), daemon=True)
    thread.start()
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 4, err[-2000:]
    run: dict[str, Any] = json.loads(out)["run"]
    assert run["status"] == "interrupted" and "phi3" in run["note"], run["note"]
    assert "benchmark stopped while measuring" in run["note"]
    # the pinned set is back once the person's chat is over
    # the person's chat was never cut short; once it is over a reconcile has the pinned set loaded
    thread.join(120)
    assert chatting.is_set() and answer["chunks"] == 300 + 1
    assert stack.apply().result == "converged"
    assert {llama3, names["nomic-embed-text"]} <= set(stack.loaded())


def _screenshot(page: Path, shot: Path, profile: Path) -> None:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
             "--window-size=1280,2400", "--virtual-time-budget=5000", f"--screenshot={shot}"]  # fmt: skip
    subprocess.run([chromium(), *flags, page.as_uri()], capture_output=True, timeout=120, check=False)


def test_the_report_compares_quantizations_and_renders_offline(stack: Stack, tmp_path: Path) -> None:
    example_on(stack, extra_env=HARDWARE)
    stack.ollama["benchmarks"]["quiet"] = "5s"
    stack.write()
    _commit(stack)
    assert stack.apply().result == "converged"
    # three quantizations of one model, pulled by hand (bigger files: more bytes read per token)
    quants = [
        stack.registry.push_model(
            "qwen2.5", tag, arch="qwen2", block_count=28, head_count=28, head_count_kv=4,
            embedding_length=3584, context_length=32768, size_bytes=size, file_type=kind,
            parameter_count=7_615_616_512, seed=f"qwen2.5:{tag}",
        ).name
        for tag, size, kind in (("7b-instruct-q4_K_M", 4 * 2**20, 15), ("7b-instruct-q5_K_M", 5 * 2**20, 17),
                                ("7b-instruct-q8_0", 8 * 2**20, 7))
    ]  # fmt: skip
    for name in quants:
        httpx.post(
            f"{stack.url}/api/pull", json={"model": name, "insecure": True, "stream": False}, timeout=60
        )
    done = _bench(stack, *quants, "--runs", "2", "--max-wait", "30")
    assert done.returncode == 0, done.stderr[-3000:]

    started = time.monotonic()
    page = tmp_path / "report.html"
    shown = _cli(stack, "bench", "report", "--html", str(page))
    render_s = time.monotonic() - started
    assert shown.returncode == 0, shown.stderr
    assert "SIMULATED" in shown.stdout and "qwen2.5:7b-instruct-q5_K_M" in shown.stdout, shown.stdout
    text = page.read_text()
    assert text.count('src="data:image/png;base64,') == 3 and "SIMULATED" in text
    assert "http://" not in text and "https://" not in text  # nothing to fetch: it reads offline
    print(f"report render: {render_s:.2f} s (a new CLI process), {len(text) / 1024:.0f} KiB")

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "bench-report.png"
    shot.unlink(missing_ok=True)
    _screenshot(page, shot, tmp_path / "profile")
    assert shot.is_file() and shot.stat().st_size > 50_000
    (ARTIFACTS / "bench-report.html").write_text(text)
    # the README's plot (docs/bench-tokens-vs-vram.png is a copy of this one)
    plot = figures(History(history_path(stack.state.root)).runs())["tokens_vs_vram"]
    plot.savefig(ARTIFACTS / "bench-tokens-vs-vram.png", dpi=100, bbox_inches="tight")
    # the generation rate falls as the quantization grows: bandwidth over bytes read per token
    run = json.loads(done.stdout)["run"]
    rates = {r["quantization"]: r["cases"][0]["eval_tps"]["median"] for r in run["results"]}
    print(f"generation tokens/s by quantization (simulated): {rates}")
    assert rates["Q4_K_M"] > rates["Q5_K_M"] > rates["Q8_0"], rates


def test_on_change_benchmarks_what_was_pulled_in_its_window_and_defers_while_people_chat(
    stack: Stack,
) -> None:
    """`benchmarks.on_change` through `apply`: the first reconcile pulls, converges, then plans a
    benchmark of the listed models (a RunBenchmark with its reason), measures and records them,
    and loads the pinned set again; the next reconcile does nothing. A setting that changes
    while somebody chats: the benchmark is deferred, recorded as such, and nothing is touched."""
    names = example_on(stack, window=open_window(), extra_env=HARDWARE)
    llama3, phi3 = names["llama3:8b-instruct-q4_K_M"], names["phi3:mini"]
    bench = stack.ollama["benchmarks"]
    bench.update({"models": [llama3, phi3], "runs": 1, "long_prompt": False, "quiet": "1s"})
    stack.ollama["container"]["env"]["OLLAMA_MAX_LOADED_MODELS"] = 3  # a person's phi3 beside the pinned two
    stack.write()
    first = stack.apply()
    assert first.result == "converged", (first.notes, [o.failed for o in first.outcomes])
    planned = [a for p in first.plans for a in p.actions if a.kind == "benchmark"]
    assert len(planned) == 1 and "benchmarks.on_change" in planned[0].reason
    history = History(history_path(stack.state.root))
    (run,) = history.runs()
    assert run.status == "completed" and run.machine.simulated
    assert {_tail(r.model) for r in run.results} == {_tail(llama3), _tail(phi3)}
    assert {llama3, names["nomic-embed-text"]} <= set(stack.loaded())
    calls = stack.mutating_ollama_calls()
    again = stack.apply()
    assert again.result == "converged" and again.actions_run == 0, again.plans[0].actions
    assert stack.mutating_ollama_calls() == calls

    # a new num_ctx for phi3 is a new setting to measure, while somebody chats with phi3
    (entry,) = [m for m in stack.ollama["models"] if m["name"] == phi3]
    entry["num_ctx"] = 2048
    stack.write()
    stop, streaming = threading.Event(), threading.Event()
    thread = threading.Thread(target=_chat_until, args=(stack, phi3, stop, streaming), daemon=True)
    thread.start()
    assert streaming.wait(60)
    before = _ours(stack.mutating_ollama_calls())
    deferred = stack.apply()
    assert not stop.is_set() and thread.is_alive(), "the chat ended before the benchmark looked"
    assert _ours(stack.mutating_ollama_calls()) == before  # nothing unloaded, nothing loaded
    assert deferred.result == "converged", deferred.notes
    assert [r.status for r in history.runs()] == ["completed", "busy"]
    assert "phi3" in history.runs()[-1].note
    assert any(n.kind == "benchmark_deferred" and "Ollama was in use" in str(n) for n in deferred.notes)
    stop.set()
    thread.join(60)
