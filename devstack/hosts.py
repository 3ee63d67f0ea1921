"""The stack's private hosts file: the DNS that restate-server sees.

The file is rewritten in place (same inode) so the bind mount over `/etc/hosts` inside
restate-server's mount namespace keeps showing the current content.
"""

from __future__ import annotations

from pathlib import Path

MARKER = "# --- managed by the restate-operator pod runner ---"


def render(base: str, entries: dict[str, str]) -> str:
    """`base` (the machine's own lines) followed by one `ip name` line per host name, sorted."""
    lines = [f"{ip}\t{name}" for name, ip in sorted(entries.items())]
    return f"{base.rstrip()}\n{MARKER}\n" + "".join(f"{line}\n" for line in lines)


def base_of(content: str) -> str:
    return content.split(MARKER, 1)[0]


def entries(path: Path) -> dict[str, str]:
    """The managed section as host name -> address (what restate-server currently resolves)."""
    _, _, section = path.read_text().partition(MARKER)
    pairs = (line.split() for line in section.splitlines() if line.strip())
    return {name: ip for ip, name in pairs}


def write_in_place(path: Path, entries: dict[str, str]) -> bool:
    """Replace the managed section; returns whether the file changed."""
    current = path.read_text()
    wanted = render(base_of(current), entries)
    if wanted == current:
        return False
    with path.open("r+") as f:
        f.write(wanted)
        f.truncate()
    return True
