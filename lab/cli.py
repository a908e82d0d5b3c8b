"""The command line: ``python -m lab <command>`` (also installed as ``conductor-lab``).

    up        start a lab and keep it running until Ctrl-C
    status    services and instances of a running lab
    boot N    boot N instances (--flavor, --wait)
    fail HOST RATE   make a compute fail that share of its builds (--fatal, --crash)
    kill SERVICE     SIGKILL a service (api, conductor, scheduler, computeN, bus)
    env       what to export so that the real `openstack` command drives the lab
    move SERVER ACTION   migrate, resize, confirm, revert, rebuild or evacuate a server
    trace     a running (or stopped) lab's trace: summary, or --export jsonl|chrome|shiviz
    demo      the seed's story in a minute
    bench     benchmarks (python -m lab bench bus | builds | startup | scale | moves | classroom | curve)
    chaos     a seeded nemesis against a new lab, then the invariants (exit 1 if broken)
    replay FILE      play a saved trace back in the terminal (or --dashboard in the page)
    clean     remove old labs' run directories (--keep N newest stopped ones, --dry-run)
    keys DIR / join TICKET / revoke NAME   a class's cloud across machines (up --class)

Commands that act on a running lab find it by ``--run-dir``, ``$CONDUCTOR_LAB_RUN_DIR``
or as the newest live lab. Bad arguments exit 2; a missing lab or a failed action, 1.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from typing import Callable

from orchestrator.config import FLAVORS, ConfigError

from . import cli_class, cli_files
from .api_client import ApiError
from .chaos import add_arguments as add_chaos_arguments
from .cluster import LabError
from .lab import Lab

__all__ = ["main"]


def cmd_up(args: argparse.Namespace) -> int:
    """Start a lab and keep it until Ctrl-C (services may be killed meanwhile: that is
    what lessons do; only losing the bus ends it)."""
    lab = Lab(computes=args.computes, seed=args.seed, preset=args.preset, flow=args.flow,
              run_dir=args.run_dir, dashboard=not args.no_dashboard,
              hosts_per_process=args.hosts_per_process,
              conductor_workers=args.conductor_workers, **cli_class.class_lab_options(args))
    try:
        lab.start()
        print(f"lab running in {lab.run_dir}", flush=True)
        if not args.no_dashboard:
            print(f"  dashboard  {lab.dashboard_url}   <- open this in a browser")
        print(f"  api     {lab.api_url}/v2.1   (X-Auth-Token: the lab's secret)")
        for name, endpoint in lab.cluster.endpoints.items():
            print(f"  {name:7} {endpoint}" if not name.startswith("class") else
                  f"  {name.replace('_', ' '):11} {endpoint}")
        print(f"  secret  {lab.run_dir}/secret   e.g. curl -H \"X-Auth-Token: "
              f"$(cat {lab.run_dir}/secret)\" {lab.api_url}/v2.1/servers")
        print(f"  openstack  eval \"$({sys.executable} -m lab env --run-dir {lab.run_dir})\"; "
              f"openstack server list")
        print(f"  {args.computes} computes, preset {args.preset}, flow {args.flow}, "
              f"seed {args.seed}")
        if args.classroom:
            cli_class.print_class(lab)
        print("Ctrl-C stops it.", flush=True)
        while lab.cluster.children["bus"].alive():
            time.sleep(0.5)
        print("the bus exited; stopping the lab", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        lab.close()


def _remote(args: argparse.Namespace):
    from .remote import RemoteLab
    return RemoteLab(args.run_dir)


def cmd_status(args: argparse.Namespace) -> int:
    with _remote(args) as lab:
        print(f"lab in {lab.run_dir}  api {lab.api_url}/v2.1  flow {lab.config.flow}")
        print(f"\n{'service':18} {'host':12} {'state':6} status")
        for s in lab.services():
            print(f"{s['binary']:18} {s['host']:12} {s['state']:6} {s['status']}")
        print(f"\n{'hypervisor':12} {'vms':>4} {'ram used':>10} {'vcpus used':>11} failing")
        for h in lab.hypervisors():
            fail = lab.failures(h["hypervisor_hostname"])
            print(f"{h['hypervisor_hostname']:12} {h['running_vms']:4} "
                  f"{h['memory_mb_used']:>5}/{h['memory_mb']:<5}{h['vcpus_used']:>5}/"
                  f"{h['vcpus']:<5} {fail['reschedule']:.0%}")
        servers = lab.servers()
        print(f"\n{len(servers)} instance(s)")
        for s in servers:
            fault = (s.get("fault") or {}).get("message", "")
            print(f"  {s['name']:14} {s['status']:6} {s['OS-EXT-STS:task_state'] or '-':22}"
                  f" {s['OS-EXT-SRV-ATTR:host'] or '-':10} attempts "
                  f"{s['OS-EXT-LAB:num_attempts']}  {fault[:60]}")
    return 0


def cmd_boot(args: argparse.Namespace) -> int:
    with _remote(args) as lab:
        ids = lab.boot(args.name, flavor=args.flavor, count=args.count)
        ids = [ids] if isinstance(ids, str) else ids
        print(f"accepted {len(ids)} (202 in {lab.last_response_time * 1000:.0f} ms)")
        if not args.wait:
            print("\n".join(ids))
            return 0
        records = lab.wait(ids, timeout=args.timeout, progress=True)
        for r in records:
            fault = (r.get("fault") or {}).get("message", "")
            print(f"{r['id']}  {r['name']:12} {r['status']:6} "
                  f"{r.get('OS-EXT-SRV-ATTR:host') or '-':10} {fault[:70]}")
        return 0 if all(r["status"] == "ACTIVE" for r in records) else 1


def cmd_fail(args: argparse.Namespace) -> int:
    with _remote(args) as lab:
        settings = lab.set_failure(args.host, reschedule=args.rate, fatal=args.fatal,
                                   crash=args.crash)
        print(f"{args.host}: " + ", ".join(f"{k} {v:g}" for k, v in settings.items()))
    return 0


MOVES = ("migrate", "resize", "confirm", "revert", "rebuild", "evacuate")


def cmd_move(args: argparse.Namespace) -> int:
    with _remote(args) as lab:
        server = _find_server(lab, args.server)
        status = {"migrate": lambda: lab.migrate(server),
                  "resize": lambda: lab.resize(server, args.flavor),
                  "confirm": lambda: lab.confirm_resize(server),
                  "revert": lambda: lab.revert_resize(server),
                  "rebuild": lambda: lab.rebuild(server, args.image),
                  "evacuate": lambda: lab.evacuate(server, args.host)}[args.action]()
        print(f"{args.action} {server}: HTTP {status} in "
              f"{lab.last_response_time * 1000:.0f} ms")
        if not args.wait:
            return 0
        r = lab.wait(server, timeout=args.timeout)
        fault = (r.get("fault") or r.get("OS-EXT-LAB:last_fault") or {}).get("message", "")
        print(f"{r['id']}  {r['name']:12} {r['status']:13} "
              f"{r.get('OS-EXT-SRV-ATTR:host') or '-':10} {r['flavor']['original_name']}")
        for m in lab.migrations(server)[:1]:
            print(f"migration {m['id']} ({m['migration_type']}): {m['source_compute']} -> "
                  f"{m['dest_compute'] or '-'}, {m['status']}")
        if fault:
            print(f"fault: {fault}")
        return 0 if r["status"] in ("ACTIVE", "VERIFY_RESIZE") and not (
            fault and args.action in ("migrate", "resize")
            and r["status"] == "ACTIVE") else 1


def _find_server(lab, ref: str) -> str:
    """A server by id, or by name if exactly one has it."""
    servers = lab.servers()
    if any(s["id"] == ref for s in servers):
        return ref
    named = [s["id"] for s in servers if s["name"] == ref]
    if len(named) != 1:
        raise LabError(f"no server with id or unique name {ref!r} "
                       f"({len(named)} named so)")
    return named[0]


def cmd_kill(args: argparse.Namespace) -> int:
    with _remote(args) as lab:
        pid = lab.kill(args.service)
        print(f"killed {args.service} (pid {pid})")
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    """``eval "$(python -m lab env)"``, then ``openstack server list`` drives the lab."""
    with _remote(args) as lab:
        for key, value in lab.openstack_env().items():
            print(f"export {key}={shlex.quote(value)}")
    print("# then: openstack server create --flavor m1.small --image cirros --no-network "
          "--wait vm1")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo
    run_demo(preset=args.preset, computes=args.computes, instances=args.instances,
             seed=args.seed)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import main as bench_main
    return bench_main(args.rest)


def cmd_chaos(args: argparse.Namespace) -> int:
    from .chaos import run_from_args
    return run_from_args(args)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def _probability(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not a probability in [0, 1]")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lab", description="Conductor Lab",
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n")[1])
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func: Callable[[argparse.Namespace], int], help: str,
            lab: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        if lab:
            p.add_argument("--run-dir", default=None, help="the lab's run directory")
        p.set_defaults(func=func)
        return p

    up = add("up", cmd_up, "start a lab and keep it running until Ctrl-C")
    up.add_argument("--computes", type=_positive, default=3)
    up.add_argument("--seed", type=int, default=0)
    up.add_argument("--preset", choices=["fast", "demo"], default="demo")
    up.add_argument("--flow", choices=["conductor", "legacy"], default="conductor")
    up.add_argument("--no-dashboard", action="store_true", help="skip the Bokeh dashboard")
    up.add_argument("--hosts-per-process", type=_positive, default=1,
                    help="compute hosts one process serves (a big cloud: 1000 hosts, 250)")
    up.add_argument("--conductor-workers", type=_positive, default=1,
                    help="conductor processes sharing the conductor topic")
    cli_class.add_up_arguments(up)
    add("status", cmd_status, "services and instances of a running lab")
    boot = add("boot", cmd_boot, "boot instances in a running lab")
    boot.add_argument("count", type=_positive)
    boot.add_argument("--flavor", choices=list(FLAVORS), default="m1.small")
    boot.add_argument("--name", default="vm")
    boot.add_argument("--wait", action="store_true", help="wait and show how each ended")
    boot.add_argument("--timeout", type=float, default=120.0)
    fail = add("fail", cmd_fail, "set a compute's build failure rate")
    fail.add_argument("host")
    fail.add_argument("rate", type=_probability, help="share of builds rescheduled, 0..1")
    fail.add_argument("--fatal", type=_probability, default=None)
    fail.add_argument("--crash", type=_probability, default=None)
    move = add("move", cmd_move, "migrate, resize, confirm, revert, rebuild or evacuate")
    move.add_argument("server", help="a server's id or name")
    move.add_argument("action", choices=MOVES)
    move.add_argument("--flavor", choices=list(FLAVORS), default="m1.medium",
                      help="resize: the new flavor")
    move.add_argument("--image", default="cirros", help="rebuild: the new image")
    move.add_argument("--host", default=None, help="evacuate: the target (else scheduler)")
    move.add_argument("--wait", action="store_true", help="wait and show where it ended")
    move.add_argument("--timeout", type=float, default=120.0)
    kill = add("kill", cmd_kill, "SIGKILL a service of a running lab")
    kill.add_argument("service")
    add("env", cmd_env, "print the exports that make the `openstack` command drive the lab")
    cli_files.add_commands(add)
    demo = add("demo", cmd_demo, "boot a few instances with one failing compute and print "
               "each one's story", lab=False)
    demo.add_argument("--preset", choices=["demo", "fast"], default="demo")
    demo.add_argument("--computes", type=_positive, default=4)
    demo.add_argument("--instances", type=_positive, default=5)
    demo.add_argument("--seed", type=int, default=0)
    bench = sub.add_parser("bench", add_help=False, help="benchmarks: python -m lab bench "
                           "bus|builds|startup|scale|moves|classroom|curve [--json]")
    bench.add_argument("rest", nargs=argparse.REMAINDER)
    bench.set_defaults(func=cmd_bench)
    chaos = add("chaos", cmd_chaos, "a seeded nemesis against a new lab while it builds; "
                "then the invariants (exit 1 on any violation)", lab=False)
    add_chaos_arguments(chaos)
    cli_class.add_commands(sub, add)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = _parser()
    # `bench` hands all it is given to lab.bench, options first too (`bench --help`),
    # which argparse's REMAINDER does not take
    args = parser.parse_args(argv) if argv[:1] != ["bench"] else \
        argparse.Namespace(func=cmd_bench, rest=argv[1:])
    try:
        return args.func(args)
    except BrokenPipeError:   # `python -m lab status | head`: the reader left; fine
        sys.stdout = open(os.devnull, "w")
        return 0
    except (LabError, ConfigError, ApiError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
