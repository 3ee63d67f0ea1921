"""Which metrics and labels a PromQL expression refers to, to check them against what the operator exports.

Not a parser (promtool parses every expression of the chart for real, `test_monitoring.py`): a
tokenizer that knows which identifiers are not metric names, namely functions and aggregations
(followed by `(` or `by`/`without`), keywords, the label lists of by/without/on/ignoring/group_left/
group_right, the label names of matchers, strings, numbers and durations. Anything it cannot
tokenize (a Grafana variable left in, say) raises, so nothing is silently skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

TOKEN = re.compile(
    r"""
    (?P<space>\s+|\#[^\n]*)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<number>0x[0-9a-fA-F]+|(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?(?:[a-zA-Z]+[0-9]*)*)
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<op>==|!=|=~|!~|>=|<=|[-+*/%^<>=(){}\[\],@:])
    """,
    re.VERBOSE,
)
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = {"bool", "offset", "and", "or", "unless", "atan2", "inf", "nan"}
AGGREGATIONS = {
    "sum",
    "avg",
    "count",
    "min",
    "max",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "limitk",
    "limit_ratio",
}


@dataclass
class Selector:
    """One vector selector: its metric name and the label names it matches on."""

    metric: str
    labels: dict[str, str] = field(default_factory=dict)  # label -> the matched value (the string literal)


@dataclass
class References:
    selectors: list[Selector]
    grouping: set[str]  # label names of by/without/on/ignoring/group_left/group_right clauses

    @property
    def metrics(self) -> set[str]:
        return {s.metric for s in self.selectors}


def tokens(expr: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(expr):
        match = TOKEN.match(expr, pos)
        if match is None:
            raise ValueError(f"cannot tokenize {expr[pos : pos + 20]!r} in {expr!r}")
        kind = match.lastgroup
        assert kind is not None
        if kind != "space":
            out.append((kind, match.group()))
        pos = match.end()
    return out


def references(expr: str) -> References:
    toks = tokens(expr)
    selectors: list[Selector] = []
    grouping: set[str] = set()
    i = 0

    def peek(at: int) -> str:
        return toks[at][1] if at < len(toks) else ""

    def matchers(start: int) -> tuple[dict[str, str], int]:
        """The `{...}` at `start`: label -> value, and the index after the closing brace."""
        found: dict[str, str] = {}
        j = start + 1
        while peek(j) != "}":
            if peek(j) == ",":
                j += 1
                continue
            (kind, name), op, (vkind, value) = toks[j], peek(j + 1), toks[j + 2]
            if kind not in ("ident", "string") or op not in ("=", "!=", "=~", "!~") or vkind != "string":
                raise ValueError(f"unexpected label matcher at {name!r} in {expr!r}")
            found[name.strip("\"'`")] = value[1:-1]
            j += 3
        return found, j + 1

    while i < len(toks):
        kind, text = toks[i]
        if kind == "ident" and text.lower() in GROUPING:
            i += 1
            if peek(i) == "(":
                i += 1
                while peek(i) != ")":
                    if toks[i][0] == "ident":
                        grouping.add(toks[i][1])
                    i += 1
                i += 1
            continue
        if kind == "ident" and (text.lower() in KEYWORDS or text.lower() in AGGREGATIONS or peek(i + 1) == "("):
            i += 1
            continue
        if kind == "ident":
            selector = Selector(text)
            i += 1
            if peek(i) == "{":
                selector.labels, i = matchers(i)
            selectors.append(selector)
            continue
        if text == "{":  # a selector without a name before the braces: {__name__="..."}
            labels, i = matchers(i)
            if "__name__" not in labels:
                raise ValueError(f"a selector without a metric name in {expr!r}")
            selectors.append(Selector(labels.pop("__name__"), labels))
            continue
        if text == "[":  # a range or subquery: durations only
            while peek(i) != "]":
                i += 1
        i += 1
    return References(selectors, grouping)
