"""The stack's private hosts file: the DNS that restate-server sees.

The file is rewritten in place (same inode) so the bind mount over `/etc/hosts` inside
restate-server's mount namespace keeps showing the current content. Several writers share it (the
pod runner, a separate process, maps Services; the Knative data plane maps Route hosts): each owns
one section and replaces only that, under an exclusive lock, so no writer loses another's lines.
"""

from __future__ import annotations

import fcntl
import re
from pathlib import Path

POD_RUNNER = "pod runner"
MARKER = f"# --- managed by the restate-operator {POD_RUNNER} ---"
_SECTION = re.compile(r"^# --- managed by the restate-operator (.+) ---$", re.MULTILINE)


def marker(owner: str) -> str:
    return f"# --- managed by the restate-operator {owner} ---"


def render(base: str, sections: dict[str, dict[str, str]]) -> str:
    """`base` (the machine's own lines), then each owner's section: one `ip name` line per host name, sorted."""
    out = f"{base.rstrip()}\n"
    for owner, entries in sections.items():
        out += f"{marker(owner)}\n" + "".join(f"{ip}\t{name}\n" for name, ip in sorted(entries.items()))
    return out


def base_of(content: str) -> str:
    match = _SECTION.search(content)
    return content[: match.start()] if match else content


def sections_of(content: str) -> dict[str, dict[str, str]]:
    """Each owner's managed entries, host name -> address, in file order."""
    found: dict[str, dict[str, str]] = {}
    matches = list(_SECTION.finditer(content))
    for i, match in enumerate(matches):
        body = content[match.end() : matches[i + 1].start() if i + 1 < len(matches) else len(content)]
        pairs = (line.split() for line in body.splitlines() if line.strip())
        found[match.group(1)] = {name: ip for ip, name in pairs}
    return found


def entries(path: Path, owner: str | None = None) -> dict[str, str]:
    """The managed entries (of every owner, or of `owner`): what restate-server currently resolves."""
    sections = sections_of(path.read_text())
    if owner is not None:
        return dict(sections.get(owner, {}))
    return {name: ip for section in sections.values() for name, ip in section.items()}


def write_in_place(path: Path, entries: dict[str, str], owner: str = POD_RUNNER) -> bool:
    """Replace `owner`'s section, keeping the base and the other sections; returns whether the file changed."""
    with path.open("r+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # released when the file closes
        current = f.read()
        sections = sections_of(current)
        sections[owner] = dict(entries)
        wanted = render(base_of(current), sections)
        if wanted == current:
            return False
        f.seek(0)
        f.write(wanted)
        f.truncate()
    return True
