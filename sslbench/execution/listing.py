"""``sslbench regularizers``: every regularizer a spec can name here, and where each came from.

One row per built-in (``_REGISTRY``) and per entry point of the group ``sslbench.regularizers`` found on
``sys.path``: its spec, kind, distribution and version, the class it loads (``adapted`` when a plain
``torch.nn.Module`` is wrapped) and, for a plugin that fails to import, its one-line error (the other rows are
listed all the same). ``package.module:Class`` specs need no entry point and are accepted wherever a name is.
"""

from __future__ import annotations

import argparse
import json

from sslbench import regularizers

KIND_TEXT = {"builtin": "built-in", "entry_point": "entry point", "module": "module:Class"}


def rows() -> list[dict]:
    """The built-ins, then the entry points (loaded; a broken one carries ``error``)."""
    out = []
    for name in regularizers.available():
        row = {"name": name, "kind": "builtin", "error": None}
        try:
            row.update(regularizers.provenance(name))
        except ImportError as exc:  # a broken built-in module: listed, not hidden
            row["error"] = f"{type(exc).__name__}: {exc}"
        out.append(row)
    for p in regularizers.plugins():
        out.append({**p, "kind": "entry_point"})
    return out


def format_rows(table: list[dict]) -> list[str]:
    head = ("spec", "kind", "source", "class")
    body = []
    for r in table:
        source = " ".join(str(x) for x in (r.get("distribution"), r.get("version")) if x) or "-"
        if r.get("git_commit"):
            source += f" @ {r['git_commit'][:10]}" + (" (dirty)" if r.get("git_dirty") else "")
        cls = r.get("class") or r.get("value") or "-"
        if r.get("adapted"):
            cls += " (plain nn.Module, adapted)"
        if r.get("shadowed"):
            cls = f"{r.get('value')}: shadowed by the built-in of the same name"
        if r.get("error"):
            cls = f"BROKEN: {r['error']}"
        body.append((r["name"], KIND_TEXT.get(r["kind"], r["kind"]), source, cls))
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(3)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row[:3], widths)) + "  " + row[3] for row in [head, *body]]
    return [line.rstrip() for line in lines]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (__doc__ or "").split("\n\n")[0]
    parser.add_argument("--json", action="store_true", help="one JSON object per regularizer instead of the table")


def run(args: argparse.Namespace) -> int:
    table = rows()
    if args.json:
        for r in table:
            print(json.dumps(r, sort_keys=True))
        return 0
    for line in format_rows(table):
        print(line)
    n_plugins = sum(r["kind"] == "entry_point" for r in table)
    broken = sum(bool(r.get("error")) for r in table)
    print(f"\n{len(table) - n_plugins} built-in, {n_plugins} from entry points ({regularizers.ENTRY_POINT_GROUP})"
          + (f", {broken} broken" if broken else "") + "; any package.module:Class is accepted too")
    return 0
