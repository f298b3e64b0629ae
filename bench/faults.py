"""kill -9 the whole server (every worker) at random moments under mixed traffic, restart, and check after each kill
that nothing the server acknowledged was lost and nothing was half-applied.

    python bench/faults.py [--database sqlite|postgresql] [--kills 10] [--workers 1] [--seed 1]
                           [--threads 6] [--postgres-url postgresql://postgres@127.0.0.1:5432/postgres]

Traffic, over HTTP from several threads: redirect-flow consent approvals (PAR, the consent page as the citizen,
code redemption), CIBA starts, approvals from the inbox and polls, agency GraphQL reads (once-only grants read
from several threads at once), issuer mutations (issue, suspend, reinstate), grant revocations by the citizen,
and erasure requests (grace period 0, so the server's maintenance erases while it may be killed). What the
server acknowledged is recorded on the client side. After each kill, with the server down:
  - every acknowledged write is present: consent requests, approvals with their grant, codes, tokens, CIBA
    requests, reads (access events), licence changes (and the licence still decrypts), revocations, erasures;
  - nothing is half-applied: each grant has exactly one approved request and its consent.approved event, each
    code and token its grant, each field-release event its grant, uses = field-release events, revoked and
    exhausted grants their events, each destroyed key its owner.erased event and the reverse;
  - use limits hold: grants.uses <= use_limit, and no once-only grant returned data twice;
  - the access log verifies (Merkle tree and every signed checkpoint), and at the end `vault audit verify` passes.
Prints kills survived and violations; exits 1 on any violation.

--target sequencer aims each kill at the leader while it integrates a batch: the server runs with
BENCH_SEQUENCER_PAUSE (vault/audit/sequencer.py), so the leader notes each step of an integration (batch read,
indexes set, tiles written, checkpoint signed, committed, tile files published) and waits there a moment; the
harness picks a step at random, waits for the leader to reach it and kills that process (every worker, with one
worker). With several workers it then waits until another worker has taken the lead and integrated, and cuts the
power to the rest. Checked after each kill, besides the above: every committed event is still there with the same
leaf hash, an integrated one at the same place, places 0..n-1 with no gap or repeat; at the end the server restarts,
its leader integrates the backlog, and no committed event is left pending (each is in the tree exactly once).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx2 as httpx
from sqlalchemy.exc import OperationalError

from bench import traffic
from bench.invariants import Held, Ledger, LicenceAck, LogSeen, check, check_sequencing
from bench.processes import (
    DEFAULT_POSTGRES,
    PROJECT_ROOT,
    START_MODES,
    Server,
    free_port,
    server_env,
    throwaway_database,
    vault_settings_env,
)
from vault.audit import sequencer
from vault.config import load_settings
from vault.db import make_engine, upgrade
from vault.wiring import Vault, build_vault


@dataclass
class Result:
    kills: int
    violations: list[str]
    acknowledged: dict[str, int]
    server_errors: int
    requests: str
    refused: Counter[str]
    stages: Counter[str] = field(default_factory=Counter)  # --target sequencer: the integration steps killed at
    log: str = ""


TARGETS = ("server", "sequencer")
STAGES = ("read", "indexed", "tiled", "signed", "committed", "tiles-published")
STEP_PAUSE = 0.25  # seconds the leader waits at each step of an integration when the harness aims at it


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--workers", type=int, help="default: 1 on SQLite, 2 on PostgreSQL")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=6)
    parser.add_argument("--trigger", choices=("any", "flow"), default="any", help="what must be acknowledged first")
    parser.add_argument("--pause", type=float, default=3.0, help="kill up to this many seconds after writes flow")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("VAULT_BENCH_POSTGRES_URL") or DEFAULT_POSTGRES,
        help="a server where a throw-away database is made",
    )
    parser.add_argument("--start", choices=START_MODES, default="fork", help="how workers start (bench/processes.py)")
    parser.add_argument("--log", type=Path, help="append the server's output here (default: a temporary file)")
    parser.add_argument(
        "--target", choices=TARGETS, default="server", help="kill every worker anywhere, or the leader mid-integration"
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop every worker on the way out, not only on ^C
    workers = args.workers or (2 if args.database == "postgresql" else 1)
    started = time.monotonic()
    result = run(
        args.database,
        args.kills,
        workers,
        args.seed,
        args.threads,
        args.postgres_url,
        out=lambda line: print(line, flush=True),
        start=args.start,
        log=args.log,
        pause=(0.0, args.pause),
        trigger=args.trigger,
        target=args.target,
    )
    print(
        f"\ndatabase:           {args.database}, {workers} worker(s), seed {args.seed}, {args.threads} client threads"
    )
    if result.stages:
        print("killed at:          " + ", ".join(f"{k} x{n}" for k, n in sorted(result.stages.items())))
        print(f"log after kills:    {result.log}")
    print(f"kills survived:     {result.kills} of {args.kills} ({time.monotonic() - started:.0f} s)")
    print("acknowledged:       " + ", ".join(f"{k} {v}" for k, v in result.acknowledged.items()))
    print(f"5xx responses:      {result.server_errors}")
    print("requests:           " + result.requests)
    print("steps refused:      " + ", ".join(f"{k} x{n}" for k, n in result.refused.most_common(8)))
    print(f"violations found:   {len(result.violations)}")
    for violation in result.violations:
        print(f"  - {violation}")
    return 1 if result.violations or result.kills < args.kills else 0


def run(
    database: str,
    kills: int,
    workers: int,
    seed: int,
    threads: int = 6,
    postgres_url: str = DEFAULT_POSTGRES,
    out: Callable[[str], None] = print,
    start: str = "fork",
    log: Path | None = None,
    citizens: int = 12,
    pause: tuple[float, float] = (0.0, 3.0),
    trigger: str = "any",
    target: str = "server",
) -> Result:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="vault-faults-") as tmp, throwaway_database(database, postgres_url) as url:
        marks = Marks(Path(tmp) / "integration-steps")
        extra = {sequencer.PAUSE_VARIABLE: f"{STEP_PAUSE}:*:{marks.path}"} if target == "sequencer" else {}
        env = server_env(
            Path(tmp) / "var", free_port(), url, VAULT_ERASURE_GRACE_DAYS="0", VAULT_CHECKPOINT_INTERVAL="1", **extra
        )
        settings = load_settings(vault_settings_env(env))
        engine = make_engine(settings.database_url)
        upgrade(engine)
        engine.dispose()
        vault = build_vault(settings)
        try:
            population = traffic.populate(vault, citizens=citizens, erasable=max(10, kills))
            ledger = Ledger()
            server = Server(env, workers, log=log or Path(tmp) / "server.log", start=start)
            out(f"server: {server.describe()}, {database}")
            logins = population.citizens
            actors = [
                Actor(server.base, ledger, random.Random(seed * 1009 + i), logins[i % len(logins) :: threads])
                for i in range(threads)
            ]
            survived, violations = 0, []
            stages: Counter[str] = Counter()
            seen = LogSeen()
            try:
                for kill in range(1, kills + 1):
                    server.start()
                    if kill == 1:  # sign every citizen in once, one at a time: sign-in throttling counts parallel tries
                        for actor in actors:
                            for login in actor.logins:
                                actor.citizen(login)
                    stop = threading.Event()
                    clients = [threading.Thread(target=a.run, args=(vault, population, stop)) for a in actors]
                    for c in clients:
                        c.start()
                    # kill at a random moment once this round's traffic is flowing: a few writes acknowledged
                    # (trigger "any"), or a whole flow through (an approval, token set, read or revocation: "flow")
                    measure = ledger.total if trigger == "any" else ledger.flows
                    progress, wanted = measure(), rng.randint(1, 6) if trigger == "any" else 1
                    deadline = time.monotonic() + 120
                    while measure() < progress + wanted and time.monotonic() < deadline:
                        time.sleep(0.02)
                    if target == "sequencer":
                        stage = rng.choice(STAGES)
                        stages[stage] += 1 if kill_leader(server, marks, stage, rng, out) else 0
                    else:
                        time.sleep(rng.uniform(*pause))
                    server.kill()  # every worker at once, mid-request: a power cut
                    stop.set()
                    for c in clients:
                        c.join()
                    found = check(vault, ledger)
                    if target == "sequencer":
                        with vault.db.session() as session:
                            found += check_sequencing(session, seen)
                    survived += 1
                    violations += [f"after kill {kill}: {v}" for v in found]
                    out(f"kill {kill}: {ledger.summary()}, {len(found)} violation(s)")
                    for v in found:
                        out(f"  - {v}")
                if target == "sequencer":  # the next leader integrates everything the kills left pending
                    violations += drain(server, vault, seen, out)
            finally:
                server.close()
                for actor in actors:
                    actor.close()
            verify = subprocess.run(
                [sys.executable, "-m", "vault.cli", "audit", "verify"],
                env=env,
                cwd=PROJECT_ROOT,
                capture_output=True,
                text=True,
                check=False,
            )
            if verify.returncode != 0:
                violations.append(f"vault audit verify failed: {verify.stdout.strip()} {verify.stderr.strip()}")
            errors = sum(n for by in ledger.stats.statuses.values() for s, n in by.items() if s.startswith("5"))
            requests = ", ".join(
                f"{kind} " + "/".join(f"{s}:{n}" for s, n in sorted(by.items()))
                for kind, by in sorted(ledger.stats.statuses.items())
            )
            log = (
                f"{len(seen.events)} events, {seen.integrated_by_restart} left pending by a kill and integrated by a "
                "later leader"
            )
            return Result(survived, violations, ledger.counts(), errors, requests, ledger.refused, stages, log)
        finally:
            vault.close()


def integrate_once(limit: int) -> None:
    """A leader's sequencing round, alone, on the vault VAULT_* names (tests/functional/test_faults.py kills it)."""
    from vault.audit import publishing

    vault = build_vault(load_settings())
    publishing.sequence_step(vault.audit, vault.db, limit=limit)
    vault.close()


class Marks:
    """The steps the leader notes while it integrates (vault/audit/sequencer.py, fault_point): pid, step, batch."""

    LINE = re.compile(r"^(\d+) (\S+) (\d+)$")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.read = 0

    def new(self) -> list[tuple[int, str]]:
        """The (pid, step) noted since the last call (a line cut short by a kill is skipped)."""
        try:
            with self.path.open("rb") as file:
                file.seek(self.read)
                data = file.read()
        except FileNotFoundError:
            return []
        complete = data[: data.rfind(b"\n") + 1]
        self.read += len(complete)
        found = [self.LINE.match(line) for line in complete.decode("ascii", "replace").splitlines()]
        return [(int(m.group(1)), m.group(2)) for m in found if m]


def kill_leader(server: Server, marks: Marks, stage: str, rng: random.Random, out: Callable[[str], None]) -> bool:
    """Wait for the leader to reach `stage` of an integration and kill -9 it there; with more workers, wait until
    another has taken the lead and integrated a batch. False when no integration reached the stage in time."""
    marks.new()
    deadline, leader = time.monotonic() + 60, 0
    while not leader and time.monotonic() < deadline:
        leader = next((pid for pid, step in marks.new() if step == stage), 0)
        time.sleep(0.01)
    if not leader:
        out(f"  no integration reached step {stage!r} within 60 s")
        return False
    time.sleep(rng.uniform(0, STEP_PAUSE * 0.8))  # the leader is waiting at the step: land anywhere in it
    if server.workers == 1:
        return True  # the caller's power cut is the leader's kill -9
    os.kill(leader, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(pid != leader and step == "committed" for pid, step in marks.new()):
            return True
        time.sleep(0.05)
    out(f"  no other worker integrated within 30 s of killing the leader at step {stage!r}")
    return True


def drain(server: Server, vault: Vault, seen: LogSeen, out: Callable[[str], None]) -> list[str]:
    """Restart the server without traffic, let its leader integrate the backlog, stop it, check nothing is pending."""
    server.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with vault.db.read_session() as session:
            if vault.audit.pending(session) == 0:
                break
        time.sleep(0.2)
    time.sleep(STEP_PAUSE * len(STAGES))  # let the last round publish its files
    server.stop()
    with vault.db.session() as session:
        found = check_sequencing(session, seen, drained=True)
    found += check(vault, Ledger())
    out(f"after restart: the leader integrated the backlog, {len(found)} violation(s)")
    return [f"after the last restart: {v}" for v in found]


class Actor:
    """One client thread: picks a kind of request at random, records what the server acknowledged."""

    ACTIONS = ("redirect", "read", "ciba", "issuer", "revoke", "erase")
    WEIGHTS = (3, 4, 2, 2, 1, 0.3)

    def __init__(self, base: str, ledger: Ledger, rng: random.Random, logins: list[str]) -> None:
        self.base, self.ledger, self.rng, self.logins = base, ledger, rng, logins
        self.agency = traffic.Client(base, ledger.stats)
        self.citizens: dict[str, traffic.Client] = {}
        self.issuer_token = ""
        self.mine: list[str] = []  # licences this thread issued: one writer each, so their state is known
        self.pending: dict[str, tuple[str, str, float]] = {}  # auth_req_id -> (client id, login, last poll)

    def close(self) -> None:
        for client in (self.agency, *self.citizens.values()):
            client.close()

    def run(self, vault: Vault, population: traffic.Population, stop: threading.Event) -> None:
        while not stop.is_set():
            self.step(vault, population)

    def step(self, vault: Vault, population: traffic.Population) -> None:
        action = self.rng.choices(self.ACTIONS, self.WEIGHTS)[0]
        try:
            getattr(self, action)(vault, population)
        except httpx.TransportError:
            time.sleep(0.05)  # the server is down (killed): the harness restarts it
        except (traffic.Unexpected, KeyError, ValueError, TypeError, OperationalError) as error:
            with self.ledger.lock:
                self.ledger.refused[f"{action}: {type(error).__name__} {error}"[:100]] += 1
            time.sleep(0.01)  # a refused step (a lost race, a killed session): go on with another

    def citizen(self, login: str) -> traffic.Client:
        client = self.citizens.setdefault(login, traffic.Client(self.base, self.ledger.stats))
        client.sign_in(login)
        return client

    def redirect(self, vault: Vault, population: traffic.Population) -> None:
        login = self.rng.choice(self.logins)
        item = self.rng.choice((traffic.ONCE_ITEM, traffic.REPEATED_ITEM))
        client_id = traffic.ITEM_AGENCY[item]
        request_id, verifier = self.agency.par(client_id, item)
        with self.ledger.lock:
            self.ledger.requests.add(request_id)
        approved = self.agency.expect(self.citizen(login).approve(request_id), 200)
        code = traffic.code_of(traffic.returning_to(approved))
        if code is None:
            raise traffic.Unexpected("approval without a code")
        with self.ledger.lock:
            self.ledger.approved.add(request_id)
            self.ledger.codes.add(code)
        self._hold(self.agency.redeem(client_id, code, verifier), client_id, login, item)

    def _hold(self, response: httpx.Response, client_id: str, login: str, item: str) -> None:
        token = self.agency.expect(response, 200).json()["access_token"]
        with self.ledger.lock:
            self.ledger.tokens.add(token)
            if item == traffic.ONCE_ITEM:
                self.ledger.once_tokens.add(token)
        grant = self.agency.grant_of(client_id, token)
        with self.ledger.lock:
            self.ledger.held.append(Held(token, client_id, grant, login, item))

    def read(self, vault: Vault, population: traffic.Population) -> None:
        with self.ledger.lock:
            if not self.ledger.held:
                return
            held = self.rng.choice(self.ledger.held[-40:])
        # a once-only grant is read from three connections at once: at most one may return data
        racers = 3 if held.item == traffic.ONCE_ITEM else 1
        outcomes: list[bool] = []

        def one() -> None:
            client = traffic.Client(self.base, self.ledger.stats)
            try:
                outcomes.append(client.read(held.token)[1])
            except httpx.TransportError:
                pass
            finally:
                client.close()

        threads = [threading.Thread(target=one) for _ in range(racers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with self.ledger.lock:
            self.ledger.reads[held.token] += sum(outcomes)

    def ciba(self, vault: Vault, population: traffic.Population) -> None:
        login = self.rng.choice(self.logins)
        item = self.rng.choice((traffic.ONCE_ITEM, traffic.REPEATED_ITEM))
        client_id = traffic.ITEM_AGENCY[item]
        started = self.agency.expect(self.agency.ciba_start(client_id, login, item), 200).json()["auth_req_id"]
        with self.ledger.lock:
            self.ledger.ciba.add(started)
        self.pending[started] = (client_id, login, 0.0)
        citizen = self.citizen(login)
        for request_id in citizen.inbox()[:1]:
            self.agency.expect(citizen.approve(request_id), 303)
            with self.ledger.lock:
                self.ledger.approved.add(request_id)
        for auth_req_id, (cid, owner, polled) in list(self.pending.items()):
            if time.monotonic() - polled < 5.5:  # the interval the server asked for
                continue
            with self.ledger.lock:
                self.ledger.ciba_spent.add(auth_req_id)  # a poll may spend it (one token set per approval)
            response = self.agency.ciba_poll(cid, auth_req_id)
            self.pending[auth_req_id] = (cid, owner, time.monotonic())
            error = response.json().get("error") if response.status_code == 400 else None
            if error in ("authorization_pending", "slow_down"):  # answered without spending the id
                with self.ledger.lock:
                    self.ledger.ciba_spent.discard(auth_req_id)
                continue
            del self.pending[auth_req_id]
            if response.status_code == 200:
                self._hold(response, cid, owner, traffic.ONCE_ITEM if cid == traffic.TRAFFIC else traffic.REPEATED_ITEM)

    def issuer(self, vault: Vault, population: traffic.Population) -> None:
        if not self.issuer_token:
            self.issuer_token = self.agency.client_token(traffic.ISSUER, "licences:issue")
        if not self.mine or self.rng.random() < 0.3:
            login = self.rng.choice(self.logins)
            response = self.agency.issue(self.issuer_token, login, population.names[login])
            changed = self._changed(response, "issueLicence")
            with self.ledger.lock:
                self.ledger.licences[changed["id"]] = LicenceAck(changed["state"].lower())
            self.mine.append(changed["id"])
            return
        licence_id = self.rng.choice(self.mine)
        with self.ledger.lock:
            ack = self.ledger.licences[licence_id]
            suspend = ack.state == "active"
            ack.attempted = "suspended" if suspend else "active"
        try:
            response = self.agency.change(self.issuer_token, licence_id, suspend)
        except httpx.TransportError:
            self.mine.remove(licence_id)  # its state is now either: no more changes to it
            raise
        changed = self._changed(response, "suspendLicence" if suspend else "reinstateLicence")
        with self.ledger.lock:
            ack.state, ack.attempted = changed["state"].lower(), None

    def _changed(self, response: httpx.Response, name: str) -> dict[str, str]:
        if response.status_code == 401:
            self.issuer_token = ""
        result = (self.agency.expect(response, 200).json().get("data") or {}).get(name) or {}
        if result.get("__typename") != "LicenceChanged":
            raise traffic.Unexpected(f"{name}: {result.get('__typename')} {result.get('problems') or ''}")
        licence: dict[str, str] = result["licence"]
        return licence

    def revoke(self, vault: Vault, population: traffic.Population) -> None:
        with self.ledger.lock:
            mine = [h for h in self.ledger.held if h.login in self.logins]
            if not mine:
                return
            held = self.rng.choice(mine)
            self.ledger.held.remove(held)
        self.agency.expect(self.citizen(held.login).revoke(held.grant_id), 303)
        with self.ledger.lock:
            self.ledger.revoked.add(held.grant_id)

    def erase(self, vault: Vault, population: traffic.Population) -> None:
        with self.ledger.lock:
            if not population.erasable:
                return
            owner = population.erasable.pop()
        with vault.db.session() as session:  # what `vault owners erase` does; the server's maintenance erases
            vault.owners.request_erasure(session, owner, actor="operator:bench")
        with self.ledger.lock:
            self.ledger.erasures.add(owner)


if __name__ == "__main__":
    sys.exit(main())
