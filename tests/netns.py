"""A command prefix that runs a process in a fresh network namespace with only loopback up.

For tests of servers that bind every interface of their host (a local Ray cluster): in
such a namespace 127.0.0.1 is the only address there is. Root makes the namespace directly;
other users through a user namespace (``--map-root-user``) where the kernel allows it.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess


@functools.cache
def loopback_only_prefix() -> tuple[list[str] | None, str]:
    """(prefix, "") where such a namespace can be made here, else (None, why not)."""
    unshare, ip = shutil.which("unshare"), shutil.which("ip") or "/usr/sbin/ip"
    if unshare is None or not os.path.exists(ip):
        return None, "no unshare/ip here to make a loopback-only network namespace (util-linux, iproute2)"
    for flags in (["--net"], ["--net", "--map-root-user"]):
        prefix = [unshare, *flags, "sh", "-c", f'{ip} link set lo up && exec "$@"', "netns"]
        try:
            probe = subprocess.run([*prefix, ip, "-4", "-o", "addr"], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        addresses = [line.split()[3] for line in probe.stdout.splitlines() if len(line.split()) > 3]
        if probe.returncode == 0 and addresses == ["127.0.0.1/8"]:
            return prefix, ""
    return None, "cannot make a loopback-only network namespace here (unshare --net refused)"
