"""
The report card: every stage appends a section of numbers under $NANOCHAT_BASE_DIR/report/,
and `generate()` gathers them into one report.md at the end of a run.

A section is written as two files, `<slug>.md` (for people) and `<slug>.json` (for the summary
table and for tools), each atomically, so a crashed stage never leaves a half-written section.
Only rank 0 writes. Deliberately left out: anything that needs a running server or a GPU.
"""

import datetime
import json
import os
import re

from nanochat.common import atomic_write_json, atomic_write_text, dist_info, get_base_dir


def slugify(title):
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def _fmt(value):
    if isinstance(value, float):
        return f"{value:.6g}" if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, int) and abs(value) >= 10_000:
        return f"{value:,}"
    return str(value)


class Report:
    def __init__(self, report_dir):
        self.dir = report_dir

    def log(self, section, data):
        """Write one stage's section. `data` is a list of dicts (key/value lines) and strings (paragraphs)."""
        if dist_info()[0] != 0:
            return None
        os.makedirs(self.dir, exist_ok=True)
        stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        lines = [f"## {section}", f"timestamp: {stamp}", ""]
        flat = {}
        for item in data:
            if isinstance(item, dict):
                for k, v in item.items():
                    lines.append(f"- {k}: {_fmt(v)}")
                    flat[k] = v
            elif item:
                lines.append(str(item))
        slug = slugify(section)
        path = os.path.join(self.dir, f"{slug}.md")
        atomic_write_text(path, "\n".join(lines) + "\n\n")
        atomic_write_json(os.path.join(self.dir, f"{slug}.json"),
                          {"section": section, "timestamp": stamp, "data": json.loads(json.dumps(flat, default=str))})
        return path

    def read(self, section):
        """The key/values a stage logged, or None if that section does not exist."""
        path = os.path.join(self.dir, f"{slugify(section)}.json")
        if not os.path.exists(path):
            return None
        with open(path) as f:
            return json.load(f)["data"]


def get_report(base_dir=None):
    return Report(os.path.join(base_dir or get_base_dir(), "report"))
