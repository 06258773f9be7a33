"""Summarise a py-spy raw (collapsed stacks) profile of the consumer: top functions, and CPU share by stage."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from consumers.deliver import rendering

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]*):(?P<line>\d+)\)$")


def _inline_lines() -> set[str]:
    """Lines of consumers/deliver/rendering.py that call the CSS inliner (a native call: the leaf is that line)."""
    source = Path(rendering.__file__).read_text().splitlines()
    return {str(i) for i, text in enumerate(source, start=1) if "_inliner.inline(" in text}


# (stage, test on "file" and "func"), checked from the innermost frame outwards; the first match wins.
_STAGES: list[tuple[str, re.Pattern[str]]] = [
    ("MIME build (consumers/deliver/message.py, email package)", re.compile(r"/email/|consumers/deliver/message\.py")),
    ("render: Jinja + Babel", re.compile(
        r"jinja2/|babel/|templates/|consumers/deliver/(rendering|class_styles|branding|catalogs|template_translation)"
        r"\.py|<template>|markupsafe")),
    ("policy + state store",
     re.compile(r"sqlite3|psycopg|consumers/state/|consumers/policy/|consumers/decide/decider\.py")),
    ("SMTP client (aiosmtplib)", re.compile(r"aiosmtplib/")),
    ("decode (fastavro + model + validation)", re.compile(r"fastavro|schemas/")),
    ("Kafka client (poll, commit, produce)", re.compile(r"kafka/")),
    ("metrics", re.compile(r"prometheus_client|ordernotify/metrics")),
    ("asyncio / threads / selectors", re.compile(r"asyncio/|threading\.py|concurrent/|selectors\.py|queue\.py")),
]


def summarise(raw: Path, top: int = 25) -> tuple[str, dict[str, float]]:
    """The text of profile-*.txt, and the share of samples per stage."""
    inline_lines = _inline_lines()
    self_counts: Counter[str] = Counter()
    total_counts: Counter[str] = Counter()
    stage_counts: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        samples += count
        frames = stack.split(";")
        parsed = []
        for frame in frames:
            m = _FRAME.match(frame.strip())
            parsed.append((m["func"], m["file"], m["line"]) if m else (frame.strip(), "", ""))
        names = [f"{func} ({file.split('site-packages/')[-1].split('/work/main/')[-1]})" for func, file, _ in parsed]
        if names:
            self_counts[names[-1]] += count
        for name in set(names):
            total_counts[name] += count
        leaf = parsed[-1] if parsed else ("", "", "")
        if leaf[1].endswith("consumers/deliver/rendering.py") and leaf[2] in inline_lines:
            stage_counts["render: css-inline (native)"] += count
            continue
        for func, file, _ in reversed(parsed):
            where = f"{file} {func}"
            stage = next((name for name, pattern in _STAGES if pattern.search(where)), None)
            if stage:
                stage_counts[stage] += count
                break
        else:
            stage_counts["other"] += count
    if not samples:
        return "no samples\n", {}
    out = [f"py-spy --gil, 100 Hz (samples taken while a thread holds the GIL): {samples} samples", "",
           "CPU share by stage:"]
    shares = {k: v / samples for k, v in stage_counts.most_common()}
    out += [f"  {100 * v:5.1f} %  {k}" for k, v in shares.items()]
    out += ["", f"top {top} functions by own time (self):"]
    out += [f"  {100 * v / samples:5.1f} %  {k}" for k, v in self_counts.most_common(top)]
    out += ["", f"top {top} functions by inclusive time (total):"]
    out += [f"  {100 * v / samples:5.1f} %  {k}" for k, v in total_counts.most_common(top)]
    return "\n".join(out) + "\n", shares
