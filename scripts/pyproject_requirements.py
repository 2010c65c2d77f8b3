"""Print the requirements that pyproject.toml declares, one per line.

    python scripts/pyproject_requirements.py GROUP [GROUP ...]

GROUP is `build` (build-system.requires), `core` (project.dependencies) or
the name of an extra (project.optional-dependencies); an extra that names
wgan_fast's own extras (`wgan_fast[eval]`) is expanded. scripts/dev.sh
installs the packages through this and tests/test_install.py reads the build
requirements through it, so pyproject.toml stays the one list.
"""
from __future__ import annotations

import os
import re
import sys

try:
    import tomllib
except ImportError:  # Python 3.10: pip carries a TOML reader
    from pip._vendor import tomli as tomllib

PYPROJECT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pyproject.toml")


def requirements(groups, pyproject: str = PYPROJECT) -> list[str]:
    with open(pyproject, "rb") as f:
        data = tomllib.load(f)
    project = data["project"]
    extras = project.get("optional-dependencies", {})
    self_ref = re.compile(rf"^{re.escape(project['name'])}\[([^\]]+)\]$")
    out: list[str] = []
    seen: set[str] = set()

    def add(group: str) -> None:
        if group in seen:
            return
        seen.add(group)
        if group == "build":
            reqs = data["build-system"]["requires"]
        elif group == "core":
            reqs = project["dependencies"]
        elif group in extras:
            reqs = extras[group]
        else:
            raise SystemExit(f"pyproject_requirements: unknown group {group!r}: build, core or one of the "
                             f"extras {', '.join(sorted(extras))}")
        for req in reqs:
            m = self_ref.match(req.replace(" ", ""))
            if m:
                for name in m.group(1).split(","):
                    add(name)
            elif req not in out:
                out.append(req)

    for g in groups:
        add(g)
    return out


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    print("\n".join(requirements(sys.argv[1:])))
