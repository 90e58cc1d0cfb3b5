#!/usr/bin/python3
"""Turns deploy/docker-compose.yml into a host-network run on this machine.

Tests here reach nothing but loopback, and a bridge network's addresses are
outside it, so every container shares the host's network. Then every service
needs ports of its own: this reads the compose file as docker-compose resolves
it (`docker-compose config`, on stdin) and writes, into OUT_DIR,
  compose-host.yml that resolved compose file with, for every service,
                   network_mode: host and no published ports (docker-compose
                   refuses both together, and an override file cannot remove
                   ports, so the whole resolved file is written); each moa service's own
                   command with only its --port/--metrics_port/--http_port
                   values and its --config path replaced, listening on
                   127.0.0.1 (--host); its health target
                   moved to its new port; the rewritten cluster config mounted
  <config>.yaml    the cluster config the commands name, with every
                   `service:port` address replaced by 127.0.0.1:<new port>
  prometheus.yml   the compose file's Prometheus config, rewritten the same way
  ports.env        shell assignments: ORCHESTRATOR_GRPC, ORCHESTRATOR_HTTP,
                   SERVICES (the moa services), METRICS_TARGETS (their count)
Nothing else of the compose file changes: images, binaries, flags, models,
environment and health checks are the compose file's own.
Volumes the compose file mounts (the TLS variant's certificates) stay.
Usage: docker-compose -f deploy/docker-compose.yml [-f OVERRIDE] config |
       host_network.py SOURCE_DIR OUT_DIR BASE_PORT
"""
import os
import re
import sys

import yaml

PORT_FLAGS = ("--port=", "--metrics_port=", "--http_port=")


def main():
    source, out, next_port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    compose = yaml.safe_load(sys.stdin)
    services = compose["services"]
    moa = [n for n, s in services.items() if s.get("image", "").startswith("moa-cluster")]

    # Every (service, port) the commands listen on gets a loopback port of its own.
    address = {}
    for name in moa:
        for arg in services[name]["command"]:
            for flag in PORT_FLAGS:
                if arg.startswith(flag):
                    address[(name, arg[len(flag):])] = next_port
                    next_port += 1

    def rewrite(text):
        def sub(m):
            port = address.get((m.group(1), m.group(2)))
            return f"127.0.0.1:{port}" if port else m.group(0)
        return re.sub(r"\b([a-z0-9][a-z0-9-]*):(\d+)\b", sub, text)

    configs = set()
    for name, entry in services.items():
        entry["network_mode"] = "host"
        entry.pop("ports", None)
        entry.pop("networks", None)
        if name in moa:
            service = dict(entry)
            command = []
            for arg in service["command"]:
                for flag in PORT_FLAGS:
                    if arg.startswith(flag):
                        arg = f"{flag}{address[(name, arg[len(flag):])]}"
                if arg == "--host=0.0.0.0":  # the host's network: loopback only
                    arg = "--host=127.0.0.1"
                if arg.startswith("--config=/etc/moa/"):
                    configs.add(arg[len("--config=/etc/moa/"):])
                    arg = "--config=/etc/moa/host-network/" + arg[len("--config=/etc/moa/"):]
                command.append(arg)
            if not any(a.startswith("--host=") for a in command):
                command.append("--host=127.0.0.1")
            entry["command"] = command
            env = dict(service.get("environment") or {})
            own = {old: new for (svc, old), new in address.items() if svc == name}
            target = env.get("MOA_HEALTH_TARGET", "")
            m = re.search(r"127\.0\.0\.1:(\d+)", target)
            if m and m.group(1) in own:
                env["MOA_HEALTH_TARGET"] = target.replace(m.group(0), f"127.0.0.1:{own[m.group(1)]}")
            entry["environment"] = env
            entry["volumes"] = (entry.get("volumes") or []) + [
                f"{out}/config:/etc/moa/host-network:ro"]
    compose.pop("networks", None)

    os.makedirs(f"{out}/config", exist_ok=True)
    for config in configs:
        with open(f"{source}/deploy/docker/{config}") as f:
            text = rewrite(f.read())
        with open(f"{out}/config/{config}", "w") as f:
            f.write(text)
        os.chmod(f"{out}/config/{config}", 0o644)
    os.chmod(f"{out}/config", 0o755)

    with open(f"{source}/deploy/prometheus/prometheus-compose.yml") as f:
        prometheus = rewrite(f.read())
    prometheus = prometheus.replace("- alerts.yml", f"- {source}/deploy/prometheus/alerts.yml")
    with open(f"{out}/prometheus.yml", "w") as f:
        f.write(prometheus)
    with open(f"{out}/compose-host.yml", "w") as f:
        yaml.safe_dump(compose, f, sort_keys=False)

    metrics = [p for (svc, old), p in address.items() if old == "9090"]
    with open(f"{out}/ports.env", "w") as f:
        f.write(f"ORCHESTRATOR_GRPC={address[('orchestrator', '50051')]}\n")
        f.write(f"ORCHESTRATOR_HTTP={address[('orchestrator', '8080')]}\n")
        f.write(f"SERVICES='{' '.join(moa)}'\n")
        f.write(f"METRICS_TARGETS={len(metrics)}\n")
        f.write(f"NEXT_PORT={next_port}\n")


if __name__ == "__main__":
    main()
