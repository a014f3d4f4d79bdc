"""The leaderboard: one table per track in the seed leaderboard's style (seed/leaderboard.md).

Ranked rows are accepted entries, fastest first (best val loss first on a budget track): baselines and
candidates whose verdict is `beats_record`. Other candidates follow, unranked ("–"), marked as
candidates with their verdict, p-value and seeds, so a pending or rejected result is visible but never
takes a place. `relative_to_control` is read as candidate time / control time (measured in the same
session on the same GPU).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ._html import _MD_LINK, esc, markdown_links, table
from ._style import format_duration, format_tokens, none_if_nan, plural

ACCEPTED_VERDICTS = ("beats_record",)
RULE_NOTES = {"first_step": "Per-step check", "smoothed": "Smoothed check", "val": "Val check"}


def _target_of(track: str, rows: pd.DataFrame) -> float | None:
    targets = pd.to_numeric(rows["target"], errors="coerce").dropna()
    if len(targets):
        return float(targets.iloc[0])
    match = re.search(r"(\d+(?:\.\d+)?)$", track)
    return float(match.group(1)) if match and "speedrun" in track else None


def _track_order(track: str, target: float | None) -> tuple[int, int, float, str]:
    tiny = track.startswith("tiny")
    return (int(tiny), int(target is None), -(target or 0.0), track)


def _is_accepted(row: pd.Series) -> bool:
    return row["status"] == "baseline" or str(row.get("verdict") or "") in ACCEPTED_VERDICTS


def _verdict_text(row: pd.Series) -> str:
    parts = []
    if none_if_nan(row.get("p_value")) is not None:
        parts.append(f"p = {float(row['p_value']):.2g}")
    if none_if_nan(row.get("n_seeds")) is not None:
        parts.append(plural(int(row["n_seeds"]), "seed"))
    relative = none_if_nan(row.get("relative_to_control"))
    if relative is not None:
        parts.append(f"{float(relative):.3g}× control time")
    others = row.get("other_rules")
    if isinstance(others, str) and others:
        parts.append(f"other crossings, not ranked: {others}")
    return ", ".join(parts)


@dataclass(frozen=True)
class LeaderboardEntry:
    """One record as a leaderboard row: its `rank` (None for an unranked candidate) and display fields."""

    rank: int | None
    id: str
    date: str
    time_s: float | None
    std_time_s: float | None
    tokens: float | None
    val_loss: float | None
    user: str  # Markdown links kept
    notes: str
    candidate: bool
    verdict: str | None
    verdict_detail: str  # p-value, seeds and time relative to the control, for a candidate
    gpu: str | None
    command: str | None
    path: str | None


@dataclass(frozen=True)
class TrackTable:
    """One track's table: its title and goal, whether it is a budget track (ranked by val loss), its rows."""

    track: str
    title: str
    goal: str
    budget: bool
    target: float | None
    rule: str
    rows: list[LeaderboardEntry]


@dataclass(frozen=True)
class LeaderboardInfo:
    """The leaderboard's tables: speedruns by target, high first; budget tracks; tiny CPU tracks last."""

    tracks: list[TrackTable]


def _get_leaderboard_info(records: pd.DataFrame) -> LeaderboardInfo:
    """Per track (speedruns by target, high first; budget tracks; tiny CPU tracks last): its title, goal,
    kind and rows, each row with `rank` (None for unranked candidates) and display fields."""
    if records is None or records.empty:
        return LeaderboardInfo(tracks=[])
    out = []
    for track, rows in records.groupby(records["track"].fillna("unknown").astype(str), sort=False):
        target = _target_of(track, rows)
        rule = next((str(r) for r in rows["rule"].dropna()), "first_step")
        budget = target is None
        metric = "val_loss" if budget else "time_s"
        rows = rows.assign(_accepted=rows.apply(_is_accepted, axis=1),
                           _metric=pd.to_numeric(rows[metric], errors="coerce"))
        rows = rows.sort_values(["_accepted", "_metric", "date"], ascending=[False, True, True], na_position="last",
                                kind="stable")
        entries, rank = [], 0
        for _, row in rows.iterrows():
            ranked = bool(row["_accepted"]) and none_if_nan(row["_metric"]) is not None
            if ranked:
                rank += 1
            candidate = row["status"] != "baseline"
            entries.append(LeaderboardEntry(
                rank=rank if ranked else None, id=row["id"], date=none_if_nan(row.get("date")) or "",
                time_s=none_if_nan(row["time_s"]), std_time_s=none_if_nan(row.get("std_time_s")),
                tokens=none_if_nan(row["tokens"]), val_loss=none_if_nan(row.get("val_loss")),
                user=none_if_nan(row.get("user")) or none_if_nan(row.get("source")) or "search.promote",
                notes=none_if_nan(row.get("notes")) or "", candidate=candidate,
                verdict=none_if_nan(row.get("verdict")), verdict_detail=_verdict_text(row) if candidate else "",
                gpu=none_if_nan(row.get("gpu")), command=none_if_nan(row.get("command")), path=row.get("path"),
            ))
        if budget:
            title, goal = "The Marathon", "Best val loss after the track's token budget"
        else:
            what = "Val Loss" if rule == "val" else "Train Loss"
            title, goal = f"Fastest To {target:g} {what}", f"Fastest Time to Reach Loss ≤ {target:g}"
        out.append(TrackTable(track=track, title=title, goal=goal, budget=budget, target=target, rule=rule,
                              rows=entries))
    out.sort(key=lambda t: _track_order(t.track, t.target))
    return LeaderboardInfo(tracks=out)


def _time_text(entry: LeaderboardEntry) -> str:
    text = format_duration(entry.time_s)
    if entry.std_time_s is not None and entry.time_s is not None:
        text += f" ± {format_duration(entry.std_time_s)}"
    return text


_MD_SPECIAL = re.compile(r"[\\`*_\[\]|<>&#!~]")
_MD_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_PLAIN_WORD = re.compile(r"[A-Za-z0-9_.:+-]+")


def md_text(value: Any) -> str:
    """Text from a record as one Markdown table cell: HTML- and Markdown-significant characters escaped
    (``<script>`` becomes ``&lt;script&gt;``, ``|`` cannot end the cell), new lines made spaces."""
    raw = " ".join(("" if value is None else str(value)).split())
    return _MD_SPECIAL.sub(lambda m: _MD_ENTITIES.get(m.group(0), "\\" + m.group(0)), raw)


def md_links(value: Any) -> str:
    """:func:`md_text`, but Markdown links to http(s) pages (the leaderboard's users) stay links."""
    raw = " ".join(("" if value is None else str(value)).split())
    out, last = [], 0
    for match in _MD_LINK.finditer(raw):
        url = "".join(f"%{ord(c):02X}" if c in "<>\"'`|\\" else c for c in match.group(2))
        out += [md_text(raw[last:match.start()]), f"[{md_text(match.group(1))}]({url})"]
        last = match.end()
    out.append(md_text(raw[last:]))
    return "".join(out)


def md_code(value: Any) -> str:
    """A word from a record in a code span when it is a plain word, else escaped text (never a broken span)."""
    text = "" if value is None else str(value)
    return f"`{text}`" if _PLAIN_WORD.fullmatch(text) else md_text(text)


def _notes_text(entry: LeaderboardEntry, *, markdown: bool) -> str:
    notes = md_links(entry.notes) if markdown else str(entry.notes)
    if entry.candidate:
        verdict = entry.verdict or "pending"
        detail = f" ({entry.verdict_detail})" if entry.verdict_detail else ""
        tag = (f"*candidate*, verdict {md_code(verdict)}{' ' if detail else ''}{md_text(detail)}" if markdown
               else f"candidate, verdict {verdict}{detail}")
        notes = f"{notes} — {tag}" if notes else tag
    return notes


def leaderboard_markdown(records: pd.DataFrame, info: LeaderboardInfo | None = None) -> str:
    """The leaderboard as Markdown, table for table in the style of seed/leaderboard.md."""
    tracks = (info if info is not None else _get_leaderboard_info(records)).tracks  # a page passes its info
    lines = ["# Blueberry-Nano Speedrun Leaderboard", ""]
    if not tracks:
        return "\n".join([*lines, "*No records yet.*", ""])
    for track in tracks:
        lines += ["", f"## {track.title}", f"*Goal: {track.goal}* · track {md_code(track.track)}", ""]
        if track.budget:
            lines += ["| # | Date | Val Loss | Time | User | Notes |", "| :--- | :--- | :--- | :--- | :--- | :--- |"]
        else:
            lines += ["| # | Date | Time | Tokens Used | User | Notes |", "| :--- | :--- | :--- | :--- | :--- | :--- |"]
        for entry in track.rows:
            first = entry.rank == 1
            bold = (lambda s: f"**{s}**") if first else (lambda s: s)
            rank = bold(str(entry.rank)) if entry.rank else "–"
            notes = _notes_text(entry, markdown=True)
            user, date = md_links(entry.user), md_text(entry.date)
            if track.budget:
                loss = "–" if entry.val_loss is None else f"{entry.val_loss:.4f}"
                cells = [rank, date, loss, _time_text(entry), user, notes]
            else:
                cells = [rank, date, bold(_time_text(entry)), bold(format_tokens(entry.tokens)), user, notes]
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _verdict_badge(verdict: str | None) -> str:
    css = "good" if verdict in ACCEPTED_VERDICTS else ("meh" if verdict == "not_significant" else "other")
    return f'<span class="verdict {css}">{esc(verdict or "pending")}</span>'


def leaderboard_html(records: pd.DataFrame, info: LeaderboardInfo | None = None) -> str:
    """The leaderboard's tables as HTML (sortable; candidates in italics with a verdict badge)."""
    info = info if info is not None else _get_leaderboard_info(records)  # a page passes the info it computed
    parts = []
    for track in info.tracks:
        parts.append(f"<h2>{esc(track.title)} <span class=muted>track {esc(track.track)}</span></h2>"
                     f"<p class=muted><em>Goal: {esc(track.goal)}</em></p>")
        if track.budget:
            columns = [("rank", "#"), ("date", "Date"), ("val_loss", "Val Loss"), ("time", "Time"), ("user", "User"),
                       ("notes", "Notes"), ("gpu", "GPU")]
        else:
            columns = [("rank", "#"), ("date", "Date"), ("time", "Time"), ("tokens", "Tokens Used"), ("user", "User"),
                       ("notes", "Notes"), ("gpu", "GPU")]
        rows = []
        for entry in track.rows:
            rank = (f"<b>{entry.rank}</b>" if entry.rank == 1 else str(entry.rank)) if entry.rank else "–"
            notes = markdown_links(entry.notes)
            if entry.candidate:
                detail = f" <span class=muted>{esc(entry.verdict_detail)}</span>" if entry.verdict_detail else ""
                notes = f"{notes} candidate {_verdict_badge(entry.verdict)}{detail}".strip()
            if entry.command:
                notes += f'<br><code class="muted">{esc(entry.command)}</code>'
            cells = [(rank, entry.rank if entry.rank else "", "num"), (esc(entry.date), entry.date, "")]
            time_cell = (esc(_time_text(entry)), "" if entry.time_s is None else entry.time_s, "num")
            if track.budget:
                loss = "–" if entry.val_loss is None else f"{entry.val_loss:.4f}"
                cells += [(loss, "" if entry.val_loss is None else entry.val_loss, "num"), time_cell]
            else:
                cells += [time_cell, (esc(format_tokens(entry.tokens)), entry.tokens or "", "num")]
            cells += [(markdown_links(entry.user), str(entry.user), ""), (notes, entry.notes, ""),
                      (esc(entry.gpu or ""), entry.gpu or "", "")]
            rows.append(cells)
        parts.append(table(columns, rows, table_id=f"track-{track.track}",
                           row_classes=["candidate" if e.candidate else "" for e in track.rows]))
    return "\n".join(parts)
