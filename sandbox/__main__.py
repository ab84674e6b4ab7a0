"""`python -m sandbox serve|demo|ui`: the simulated vendors, on their own or around a run.

- serve: start the embedded PostgreSQL and every simulator, write `.local/sandbox.env`, wait.
- demo:  serve, run one full refresh, print the dashboard tables and compare them with the
         world's ground truth, then stop everything (exit 1 on a mismatch or failed source).
- ui:    serve, then run `dg dev` (UI, daemon) on the same state until interrupted.

`--variant NAME` makes the Supabase projects store their tables in one of the schema variants of
`sandbox/supabase_shapes.py` (same rows, another shape).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from sandbox.supabase_shapes import VARIANTS

ROOT = Path(__file__).resolve().parent.parent
ENV_FILE = ROOT / ".local" / "sandbox.env"


def _start(args: argparse.Namespace, fresh_warehouse: bool = False):  # -> Sandbox
    from resources import embedded_pg
    from resources.environment import prepare_environment
    from sandbox.stack import Sandbox

    prepare_environment()
    server_uri = embedded_pg.start()
    embedded = embedded_pg.database_uri(server_uri, "warehouse")
    if fresh_warehouse and os.environ[embedded_pg.WAREHOUSE_VARIABLE] == embedded:
        # the world is built anew each time, so the demo's own warehouse starts empty to match
        embedded_pg.drop_database(server_uri, "warehouse")
        embedded_pg.create_database(server_uri, "warehouse")
    sandbox = Sandbox(server_uri, seed=args.seed, scale=args.scale, variant=args.variant).start()
    env = sandbox.env()
    os.environ.update(env)
    ENV_FILE.write_text("".join(f"{k}={v}\n" for k, v in sorted(env.items())))
    return sandbox


def serve(args: argparse.Namespace) -> int:
    sandbox = _start(args)
    print(f"sandbox serving; settings in {ENV_FILE.relative_to(ROOT)}", flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    sandbox.stop()
    return 0


def demo(args: argparse.Namespace) -> int:
    from commands.runs import dashboard, run_all
    from resources.warehouse import WarehouseResource
    from sandbox.truth import compare_all

    started = time.perf_counter()
    sandbox = _start(args, fresh_warehouse=True)
    try:
        import dagster as dg

        warehouse = WarehouseResource(url=os.environ[WarehouseResource.VARIABLE])
        warehouse.apply_ddl()
        print("hourly refresh, every source in one run:", flush=True)
        with dg.DagsterInstance.get() as instance:
            outcome = run_all(instance)
        print()
        print(dashboard(warehouse))
        print()
        mismatches = compare_all(warehouse, sandbox.world)
        for line in mismatches or [
            "marts, AmoCRM leads and Facebook insights equal the sandbox's ground truth"
        ]:
            print(line)
    finally:
        sandbox.stop()
    print(f"\ndemo finished in {time.perf_counter() - started:.1f} s (servers stopped)")
    return 0 if all(outcome.values()) and not mismatches else 1


def ui(args: argparse.Namespace) -> int:
    sandbox = _start(args)
    child = launch_dg_dev(args.port)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: _signal_group(child.pid, signal.SIGTERM))
    try:
        child.wait()
    finally:
        stop_dg_dev(child)
        sandbox.stop()
    return 0


def launch_dg_dev(
    port: int, env: dict[str, str] | None = None, **popen: Any
) -> subprocess.Popen[bytes]:
    """`dg dev` (webserver, daemon, code server) on 127.0.0.1:`port`, from the checkout's root,
    in its own process group, so stopping it stops them all (see `stop_dg_dev`)."""

    def default_signals() -> None:
        # started from a script, dagster dev inherits SIGINT as ignored and copies that onto
        # SIGTERM, so it could never be stopped: give it the default handlers back
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    venv = ROOT / ".venv"
    # VIRTUAL_ENV: the project's venv counts as the active one (else dg warns that they differ)
    child_env = {**(os.environ if env is None else env), "VIRTUAL_ENV": str(venv)}
    return subprocess.Popen(
        [str(venv / "bin" / "dg"), "dev", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=child_env,
        preexec_fn=default_signals,
        start_new_session=True,
        **popen,
    )


def stop_dg_dev(child: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM to the whole group (about 2 s to stop), SIGKILL to whatever is left."""
    _signal_group(child.pid, signal.SIGTERM)
    try:
        child.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    time.sleep(0.5)  # the webserver and daemon leave after their parent
    _signal_group(child.pid, signal.SIGKILL)
    child.wait()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox")
    parser.add_argument("command", choices=["serve", "demo", "ui"])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument(
        "--variant",
        choices=sorted(VARIANTS),
        default="default",
        help="how the Supabase projects store their tables (sandbox/supabase_shapes.py)",
    )
    args = parser.parse_args()
    from resources import embedded_pg

    with embedded_pg.owned_server():
        return {"serve": serve, "demo": demo, "ui": ui}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
